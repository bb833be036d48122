//! State kept from the event stream: processes, their fds, cgroups, containers and users.

pub mod cgroups;
pub mod container;
pub mod container_meta;
pub mod fd;
pub mod paths;
pub mod process;
pub mod procfs;
pub mod procnet;
pub mod users;
