//! Egress control: which destinations each workload may connect or send to.
//!
//! Operators describe allowed destinations in policy files ([`policy`]); the kernel's
//! `cgroup_sock_addr` programs decide each `connect` and `sendmsg` against them.

pub mod alert;
pub mod control;
pub mod dns;
pub mod kernel;
pub mod policy;
