//! State kept from the event stream: processes, their fds, cgroups, containers and users, and
//! the node's pods as the Kubernetes API server reports them.

pub mod cgroups;
pub mod container;
pub mod container_meta;
pub mod fd;
pub mod intern;
pub mod paths;
pub mod pod_watch;
pub mod pods;
pub mod process;
pub mod procfs;
pub mod procnet;
pub mod users;
