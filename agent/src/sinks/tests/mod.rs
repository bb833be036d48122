//! Delivery tests against real receivers on loopback.

mod delivery;
mod receiver;
