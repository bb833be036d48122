//! Egress decisions: `cgroup_sock_addr` programs on the cgroup v2 root see every TCP/UDP
//! connect and UDP send, select the policy of the calling workload, and look the destination up
//! in that policy's allowlist. What is not allowed is reported; under an enforcing policy the
//! call also fails with EPERM.

use core::ptr::addr_of_mut;

use agent_common::{
    EGRESS_GENERATIONS, EGRESS_MAX_CGROUP_DEPTH, EGRESS_MAX_PORT_RULES, EGRESS_NO_POLICY,
    EgressConfig, EgressHostKey, EgressKey4, EgressKey6, EgressLearned, EgressNameKey, EgressPorts,
    EgressRecord, RecordKind, drop_reason, egress_policy_key,
};
use aya_ebpf::{
    helpers::generated::{
        bpf_get_current_ancestor_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_ktime_get_boot_ns,
    },
    macros::{cgroup_sock_addr, map},
    maps::{Array, HashMap, LpmTrie, LruHashMap, lpm_trie::Key},
    programs::SockAddrContext,
};

use crate::{EVENTS, count_drop, fill_header, submit};

const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;
const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;
const SOCK_STREAM: u32 = 1;
const ALLOW: i32 = 1;
const DENY: i32 = 0;
const HOOK_CONNECT: u8 = 0;
const HOOK_SENDMSG: u8 = 1;

/// The generation in use (0 or 1); a reload fills the other one, then flips this.
#[map]
pub(crate) static EGRESS_ACTIVE: Array<u32> = Array::with_max_entries(1, 0);

/// The policy set of each generation.
#[map]
static EGRESS_CONFIG: Array<EgressConfig> = Array::with_max_entries(EGRESS_GENERATIONS as u32, 0);

/// Policies selected by a cgroup (and so by every cgroup below it), by cgroup id; one mask per
/// generation.
#[map]
static EGRESS_CGROUPS: HashMap<u64, [u64; EGRESS_GENERATIONS]> =
    HashMap::with_max_entries(16384, 0);

/// Policies selected by a process name (the 16-byte comm, NUL padded); one mask per generation.
#[map]
static EGRESS_COMMS: HashMap<[u8; 16], [u64; EGRESS_GENERATIONS]> =
    HashMap::with_max_entries(4096, 0);

#[map]
static EGRESS_ALLOW4: LpmTrie<EgressKey4, EgressPorts> = LpmTrie::with_max_entries(65536, 0);

#[map]
static EGRESS_ALLOW6: LpmTrie<EgressKey6, EgressPorts> = LpmTrie::with_max_entries(65536, 0);

/// Names with host rules: (name hash, wildcard, `EGRESS_NO_POLICY`) -> policies with a rule,
/// one mask per generation.
#[map]
pub(crate) static EGRESS_NAMES: HashMap<EgressNameKey, [u64; EGRESS_GENERATIONS]> =
    HashMap::with_max_entries(16384, 0);

/// The ports a policy's host rule allows: (name hash, wildcard, policy) -> ports.
#[map]
pub(crate) static EGRESS_NAME_PORTS: HashMap<EgressNameKey, EgressPorts> =
    HashMap::with_max_entries(16384, 0);

/// Addresses learned from DNS answers to names with host rules, per policy; least recently
/// used first out when full.
#[map]
pub(crate) static EGRESS_HOSTS: LruHashMap<EgressHostKey, EgressLearned> =
    LruHashMap::with_max_entries(65536, 0);

/// A destination as the hooks see it.
struct Destination {
    v4: bool,
    addr: [u8; 16],
    port: u16,
    protocol: u8,
}

#[cgroup_sock_addr(connect4)]
pub fn egress_connect4(ctx: SockAddrContext) -> i32 {
    decide(&ctx, false, HOOK_CONNECT)
}

#[cgroup_sock_addr(connect6)]
pub fn egress_connect6(ctx: SockAddrContext) -> i32 {
    decide(&ctx, true, HOOK_CONNECT)
}

#[cgroup_sock_addr(sendmsg4)]
pub fn egress_sendmsg4(ctx: SockAddrContext) -> i32 {
    decide(&ctx, false, HOOK_SENDMSG)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn egress_sendmsg6(ctx: SockAddrContext) -> i32 {
    decide(&ctx, true, HOOK_SENDMSG)
}

#[inline(always)]
fn decide(ctx: &SockAddrContext, v6: bool, hook: u8) -> i32 {
    let generation = active_generation();
    let Some(config) = EGRESS_CONFIG.get(generation) else {
        return ALLOW;
    };
    if config.active == 0 {
        return ALLOW;
    }
    // SAFETY: the helper has no preconditions.
    let tgid = (unsafe { bpf_get_current_pid_tgid() } >> 32) as u32;
    if tgid == config.exempt_tgid {
        return ALLOW;
    }
    let Some(destination) = destination(ctx, v6) else {
        return ALLOW;
    };
    if is_loopback(&destination) {
        return ALLOW;
    }
    let selected = selected_policies(config, generation) & config.active;
    let index = if selected == 0 {
        if config.default_policy == EGRESS_NO_POLICY {
            return ALLOW;
        }
        config.default_policy
    } else {
        lowest_bit(selected)
    };
    let policy = egress_policy_key(generation, index);
    if allowed(policy, &destination) {
        return ALLOW;
    }
    let enforce = index < 64 && config.enforce & (1u64 << index) != 0;
    report(&destination, policy, enforce, hook);
    if enforce { DENY } else { ALLOW }
}

#[inline(always)]
fn destination(ctx: &SockAddrContext, v6: bool) -> Option<Destination> {
    let sa = ctx.sock_addr;
    // SAFETY: the context pointer is the kernel's bpf_sock_addr; fields are read with the
    // 4-byte loads the verifier accepts for it.
    let (family, port, sock_type, protocol) = unsafe {
        (
            (*sa).user_family,
            (*sa).user_port,
            (*sa).type_,
            (*sa).protocol,
        )
    };
    let protocol = if protocol != 0 {
        protocol
    } else if sock_type == SOCK_STREAM {
        IPPROTO_TCP
    } else {
        IPPROTO_UDP
    };
    let mut addr = [0u8; 16];
    let v4 = if !v6 {
        if family != AF_INET {
            return None;
        }
        // SAFETY: as above.
        let ip = unsafe { (*sa).user_ip4 };
        addr[..4].copy_from_slice(&ip.to_ne_bytes());
        true
    } else {
        if family != AF_INET6 {
            return None;
        }
        // SAFETY: as above, one word at a time.
        let words = unsafe {
            [
                (*sa).user_ip6[0],
                (*sa).user_ip6[1],
                (*sa).user_ip6[2],
                (*sa).user_ip6[3],
            ]
        };
        // ::ffff:a.b.c.d is IPv4 through a dual-stack socket: decide it as IPv4.
        if words[0] == 0 && words[1] == 0 && words[2] == u32::from_be(0xffff) {
            addr[..4].copy_from_slice(&words[3].to_ne_bytes());
            true
        } else {
            addr[0..4].copy_from_slice(&words[0].to_ne_bytes());
            addr[4..8].copy_from_slice(&words[1].to_ne_bytes());
            addr[8..12].copy_from_slice(&words[2].to_ne_bytes());
            addr[12..16].copy_from_slice(&words[3].to_ne_bytes());
            false
        }
    };
    Some(Destination {
        v4,
        addr,
        // The port is stored in network byte order in the low 16 bits.
        port: u16::from_be(port as u16),
        protocol: protocol as u8,
    })
}

#[inline(always)]
fn is_loopback(destination: &Destination) -> bool {
    if destination.v4 {
        destination.addr[0] == 127
    } else {
        destination.addr[..15].iter().all(|&b| b == 0) && destination.addr[15] == 1
    }
}

/// The generation in use: 0 or 1.
#[inline(always)]
pub(crate) fn active_generation() -> u32 {
    EGRESS_ACTIVE.get(0).copied().unwrap_or(0) & 1
}

/// The mask of `generation` in a per-generation mask value.
#[inline(always)]
fn mask_of(masks: Option<&[u64; EGRESS_GENERATIONS]>, generation: u32) -> u64 {
    match masks {
        Some(masks) if generation == 0 => masks[0],
        Some(masks) => masks[1],
        None => 0,
    }
}

/// The policies whose cgroup and process-name conditions both hold for the caller.
#[inline(always)]
fn selected_policies(config: &EgressConfig, generation: u32) -> u64 {
    let mut by_cgroup = config.cgroup_free;
    // Level 0 is the root; the caller's own cgroup is the deepest level that exists.
    for level in 1..EGRESS_MAX_CGROUP_DEPTH {
        // SAFETY: the helper has no preconditions; it returns 0 past the caller's depth.
        let id = unsafe { bpf_get_current_ancestor_cgroup_id(level as i32) };
        if id == 0 {
            break;
        }
        // SAFETY: the value is plain data read at once.
        by_cgroup |= mask_of(unsafe { EGRESS_CGROUPS.get(id) }, generation);
    }
    let mut comm = [0u8; 16];
    // SAFETY: comm is 16 writable bytes.
    unsafe { bpf_get_current_comm(comm.as_mut_ptr().cast(), 16) };
    // SAFETY: as above.
    let by_comm = config.comm_free | mask_of(unsafe { EGRESS_COMMS.get(comm) }, generation);
    by_cgroup & by_comm
}

/// Index of the lowest set bit of a non-zero mask: the first policy in file order wins.
#[inline(always)]
pub(crate) fn lowest_bit(mask: u64) -> u32 {
    let mut m = mask & mask.wrapping_neg();
    let mut index = 0;
    if m & 0xffff_ffff == 0 {
        index += 32;
        m >>= 32;
    }
    if m & 0xffff == 0 {
        index += 16;
        m >>= 16;
    }
    if m & 0xff == 0 {
        index += 8;
        m >>= 8;
    }
    if m & 0xf == 0 {
        index += 4;
        m >>= 4;
    }
    if m & 0x3 == 0 {
        index += 2;
        m >>= 2;
    }
    if m & 0x1 == 0 {
        index += 1;
    }
    index
}

#[inline(always)]
fn allowed(policy: u32, destination: &Destination) -> bool {
    let policy_bytes = policy.to_be_bytes();
    let ports = if destination.v4 {
        let mut data: EgressKey4 = [0; 8];
        data[..4].copy_from_slice(&policy_bytes);
        data[4..].copy_from_slice(&destination.addr[..4]);
        EGRESS_ALLOW4.get(Key::new(64, data))
    } else {
        let mut data: EgressKey6 = [0; 20];
        data[..4].copy_from_slice(&policy_bytes);
        data[4..].copy_from_slice(&destination.addr);
        EGRESS_ALLOW6.get(Key::new(160, data))
    };
    if let Some(ports) = ports
        && ports_allow(ports, destination)
    {
        return true;
    }
    let key = EgressHostKey {
        policy,
        v4: u32::from(destination.v4),
        addr: destination.addr,
    };
    // SAFETY: the value is read at once, not kept.
    match unsafe { EGRESS_HOSTS.get(key) } {
        // SAFETY: the helper has no preconditions.
        Some(learned) if learned.expires_boot_ns > unsafe { bpf_ktime_get_boot_ns() } => {
            // SAFETY: as above.
            unsafe { EGRESS_NAME_PORTS.get(learned.rule) }
                .is_some_and(|ports| ports_allow(ports, destination))
        }
        _ => false,
    }
}

#[inline(always)]
fn ports_allow(ports: &EgressPorts, destination: &Destination) -> bool {
    let mut i = 0;
    while i < EGRESS_MAX_PORT_RULES {
        if i as u32 >= ports.len {
            break;
        }
        let rule = &ports.rules[i];
        if (rule.protocol == 0 || rule.protocol == destination.protocol)
            && rule.lo <= destination.port
            && destination.port <= rule.hi
        {
            return true;
        }
        i += 1;
    }
    false
}

#[inline(always)]
fn report(destination: &Destination, policy: u32, blocked: bool, hook: u8) {
    let Some(mut entry) = EVENTS.reserve::<EgressRecord>(0) else {
        count_drop(drop_reason::RINGBUF_FULL);
        return;
    };
    let record = entry.as_mut_ptr();
    // SAFETY: the reservation is an EgressRecord's worth of writable bytes.
    unsafe {
        fill_header(addr_of_mut!((*record).header), RecordKind::Egress, 0);
        (*record).addr = destination.addr;
        (*record).family = if destination.v4 {
            AF_INET as u16
        } else {
            AF_INET6 as u16
        };
        (*record).port = destination.port;
        (*record).policy = policy;
        (*record).protocol = destination.protocol;
        (*record).blocked = blocked as u8;
        (*record).hook = hook;
        (*record).reserved = 0;
        (*record).reserved2 = 0;
    }
    // SAFETY: the header was filled above.
    submit(entry, unsafe { (*record).header.ts_ns });
}
