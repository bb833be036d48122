//! DNS answers, seen by a `cgroup_skb` ingress program on the cgroup v2 root before the workload
//! reads them. When the question names a host in a policy's allowlist, the answer's addresses
//! are added to that policy's learned addresses here, in the kernel, so they are allowed before
//! the workload can connect to them. Every response also goes to userspace, which keeps the
//! names for `fd.sip.name`.

use core::ffi::c_void;

use agent_common::{
    DNS_CAPTURE_MAX, DNS_HASH_START, DNS_MAX_LABELS, DnsRecord, EGRESS_DNS_GRACE_SECONDS,
    EGRESS_MAX_DNS_ADDRESSES, EGRESS_MAX_DNS_POLICIES, EGRESS_NO_POLICY, EgressHostKey,
    EgressLearned, EgressNameKey, RecordKind, dns_fold, dns_hash_byte, drop_reason,
    egress_policy_key,
};
use aya_ebpf::{
    helpers::generated::{bpf_ktime_get_boot_ns, bpf_skb_load_bytes},
    macros::{cgroup_skb, map},
    maps::PerCpuArray,
    programs::SkBuffContext,
};

use crate::{
    EVENTS, count_drop,
    egress::{EGRESS_HOSTS, EGRESS_NAMES, active_generation, lowest_bit},
    fill_header, submit,
};

const IPPROTO_UDP: u8 = 17;
const DNS_PORT: u16 = 53;
const INDEX: usize = DNS_CAPTURE_MAX - 1;
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
/// Resource records looked at per response (CNAMEs before the addresses count too).
const MAX_RECORDS: usize = 12;
const MAX_LABEL: usize = 63;

/// Working memory of one response, off the 512-byte BPF stack.
#[repr(C)]
pub struct DnsWork {
    hashes: [u64; DNS_MAX_LABELS],
    matched: [EgressNameKey; EGRESS_MAX_DNS_POLICIES],
    key: EgressHostKey,
    learned: EgressLearned,
    labels: u32,
    found: u32,
    len: u32,
    answers: u32,
    at: u32,
    learned_count: u32,
}

#[map]
static DNS_WORK: PerCpuArray<DnsWork> = PerCpuArray::with_max_entries(1, 0);

#[cgroup_skb(ingress)]
pub fn egress_dns(ctx: SkBuffContext) -> i32 {
    on_packet(&ctx);
    // Never drops: this program only watches.
    1
}

/// Where the DNS message starts, for a UDP packet from port 53.
#[inline(always)]
fn dns_offset(ctx: &SkBuffContext) -> Option<usize> {
    let first: u8 = ctx.load(0).ok()?;
    let (protocol, l4) = match first >> 4 {
        4 => {
            let ihl = usize::from(first & 0x0f) * 4;
            if ihl < 20 {
                return None;
            }
            (ctx.load::<u8>(9).ok()?, ihl)
        }
        6 => (ctx.load::<u8>(6).ok()?, 40),
        _ => return None,
    };
    if protocol != IPPROTO_UDP {
        return None;
    }
    let source_port = u16::from_be(ctx.load::<u16>(l4).ok()?);
    (source_port == DNS_PORT).then_some(l4 + 8)
}

#[inline(always)]
fn on_packet(ctx: &SkBuffContext) {
    let Some(offset) = dns_offset(ctx) else {
        return;
    };
    let total = ctx.len() as usize;
    if total <= offset + 12 {
        return;
    }
    // The verifier must see 1..=DNS_CAPTURE_MAX on the register passed to the helper; masking
    // gives it that range by arithmetic (a comparison gets folded into a form it cannot use),
    // and changes nothing for the 13..=512 bytes this can be.
    let len = (((total - offset).min(DNS_CAPTURE_MAX) as u32).wrapping_sub(1)
        & (DNS_CAPTURE_MAX as u32 - 1))
        + 1;
    let Some(mut entry) = EVENTS.reserve::<DnsRecord>(0) else {
        count_drop(drop_reason::RINGBUF_FULL);
        return;
    };
    let record = entry.as_mut_ptr();
    // SAFETY: the reservation is a DnsRecord's worth of writable bytes; the load writes at most
    // `len` <= DNS_CAPTURE_MAX bytes into `data`.
    let loaded = unsafe {
        fill_header(
            core::ptr::addr_of_mut!((*record).header),
            RecordKind::Dns,
            0,
        );
        (*record).len = len as u16;
        (*record).reserved = [0; 6];
        bpf_skb_load_bytes(
            ctx.skb.skb as *const c_void,
            offset as u32,
            core::ptr::addr_of_mut!((*record).data).cast(),
            len,
        )
    };
    if loaded != 0 {
        entry.discard(0);
        return;
    }
    // SAFETY: `data` was just filled (its first `len` bytes) and stays ours until submit.
    let data = unsafe { &(*record).data };
    learn(data, len as usize);
    // SAFETY: the header was filled above.
    submit(entry, unsafe { (*record).header.ts_ns });
}

#[inline(always)]
fn byte(data: &[u8; DNS_CAPTURE_MAX], at: usize) -> u8 {
    data[at & INDEX]
}

#[inline(always)]
fn be16(data: &[u8; DNS_CAPTURE_MAX], at: usize) -> u16 {
    u16::from(byte(data, at)) << 8 | u16::from(byte(data, at + 1))
}

#[inline(always)]
fn be32(data: &[u8; DNS_CAPTURE_MAX], at: usize) -> u32 {
    u32::from(be16(data, at)) << 16 | u32::from(be16(data, at + 2))
}

/// Adds the answer's addresses to the learned addresses of every policy (at most four) with a
/// host rule for the question's name.
///
/// Written for the verifier: the question is read in one flat loop whose byte offsets are
/// constants, answer owner names must be compression pointers (as every common server writes
/// them), and nothing larger than a word is copied, so each path stays short.
#[inline(always)]
fn learn(data: &[u8; DNS_CAPTURE_MAX], len: usize) {
    let flags = be16(data, 2);
    // A response (QR) without error (RCODE 0), to exactly one question.
    if flags & 0x8000 == 0 || flags & 0x000f != 0 || be16(data, 4) != 1 {
        return;
    }
    let answers = be16(data, 6);
    let Some(work) = DNS_WORK.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot; softirq processing does not nest on one CPU, so nothing else
    // uses it until this program returns.
    let work = unsafe { &mut *work };

    // The question name: a hash per label.
    let mut labels = 0usize;
    let mut at = 12usize;
    let mut ended = false;
    for _ in 0..DNS_MAX_LABELS + 1 {
        if at >= len {
            return;
        }
        at &= INDEX;
        if byte(data, at) == 0 {
            ended = true;
            break;
        }
        let size = usize::from(byte(data, at));
        // Longer labels are compression pointers, which a question does not use.
        if size > MAX_LABEL || labels >= DNS_MAX_LABELS {
            return;
        }
        let mut hash = DNS_HASH_START;
        // A fixed trip count, and which bytes count taken from a bit mask rather than a
        // comparison with `size`: a comparison becomes a branch that pins `size` to one value
        // per path, and the verifier would then walk every label length separately.
        let in_label = (1u64 << size) - 1;
        for i in 0..MAX_LABEL {
            let stepped = dns_hash_byte(hash, byte(data, at + 1 + i));
            let keep = ((in_label >> i) & 1).wrapping_neg();
            hash = (stepped & keep) | (hash & !keep);
        }
        work.hashes[labels & (DNS_MAX_LABELS - 1)] = hash;
        labels += 1;
        // Read the length again rather than reuse `size`, whose range the loop narrowed
        // differently on each path; one range lets the verifier prune.
        at += 1 + usize::from(byte(data, at) & 0x3f);
    }
    if !ended || labels == 0 {
        return;
    }
    let name_end = at + 1;
    // Round-trip the counters through map memory: the verifier then sees one unknown value
    // instead of a separate constant per name length, and checks what follows once.
    work.labels = labels as u32;
    let labels = (work.labels as usize).min(DNS_MAX_LABELS);
    // Fold from the right: every suffix of the name gets its hash.
    let mut suffix = 0u64;
    let mut index = labels;
    for _ in 0..DNS_MAX_LABELS {
        if index == 0 {
            break;
        }
        index -= 1;
        suffix = dns_fold(suffix, work.hashes[index & (DNS_MAX_LABELS - 1)]);
        work.hashes[index & (DNS_MAX_LABELS - 1)] = suffix;
    }

    // Policies with a rule for the name itself or for a wildcard above it. The count lives in
    // map memory, not in a local, for the same reason as the counters below.
    let generation = active_generation();
    work.found = 0;
    for level in 0..DNS_MAX_LABELS {
        if level >= labels || work.found >= EGRESS_MAX_DNS_POLICIES as u32 {
            break;
        }
        let key = EgressNameKey {
            hash: work.hashes[level & (DNS_MAX_LABELS - 1)],
            policy: EGRESS_NO_POLICY,
            wildcard: u32::from(level > 0),
        };
        // SAFETY: the value is copied out at once.
        let Some(masks) = (unsafe { EGRESS_NAMES.get(key) }).copied() else {
            continue;
        };
        let mut policies = if generation == 0 { masks[0] } else { masks[1] };
        for _ in 0..EGRESS_MAX_DNS_POLICIES {
            let found = work.found as usize;
            if policies == 0 || found >= EGRESS_MAX_DNS_POLICIES {
                break;
            }
            // A volatile read keeps the mask: without it the compiler drops it after the check
            // above, and the verifier, which saw that check on another register, refuses the
            // unbounded index.
            // SAFETY: a plain read of this CPU's working memory.
            let index = unsafe { core::ptr::read_volatile(&work.found) } as usize
                & (EGRESS_MAX_DNS_POLICIES - 1);
            let slot = &mut work.matched[index];
            slot.hash = key.hash;
            slot.wildcard = key.wildcard;
            slot.policy = egress_policy_key(generation, lowest_bit(policies));
            policies &= policies - 1;
            work.found += 1;
        }
    }
    if work.found == 0 {
        return;
    }
    work.learned_count = 0;

    // The answers, after QTYPE and QCLASS: every A and AAAA record, whatever CNAMEs lead to
    // them.
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    work.len = len as u32;
    work.answers = u32::from(answers);
    work.at = ((name_end + 4) & INDEX) as u32;
    for _ in 0..MAX_RECORDS {
        // Counters and bounds come back from map memory each time: comparisons narrow a
        // value's range differently on every path, and fresh loads keep the paths alike so
        // the verifier can prune them.
        let len = (work.len as usize).min(DNS_CAPTURE_MAX);
        let at = work.at as usize & INDEX;
        if work.answers == 0 || work.learned_count >= EGRESS_MAX_DNS_ADDRESSES as u32 {
            break;
        }
        work.answers -= 1;
        // Owner name (a compression pointer), TYPE, CLASS, TTL, RDLENGTH, then RDATA.
        if at + 12 > len || byte(data, at) & 0xc0 != 0xc0 {
            return;
        }
        let record_type = be16(data, at + 2);
        let ttl = u64::from(be32(data, at + 6));
        let size = usize::from(be16(data, at + 10));
        let rdata = at + 12;
        if rdata + size > len {
            return;
        }
        work.at = ((rdata + size) & INDEX) as u32;
        let v4 = record_type == TYPE_A && size == 4;
        if v4 || (record_type == TYPE_AAAA && size == 16) {
            for i in 0..16 {
                work.key.addr[i] = if i < size { byte(data, rdata + i) } else { 0 };
            }
            work.key.v4 = u32::from(v4);
            work.learned.expires_boot_ns = now + (ttl + EGRESS_DNS_GRACE_SECONDS) * 1_000_000_000;
            remember(work);
            work.learned_count += 1;
        }
        if rdata + size >= len {
            return;
        }
    }
}

/// Stores the address in `work.key` for each matched policy.
#[inline(always)]
fn remember(work: &mut DnsWork) {
    for i in 0..EGRESS_MAX_DNS_POLICIES {
        if i as u32 >= work.found {
            break;
        }
        let rule = &work.matched[i];
        work.learned.rule.hash = rule.hash;
        work.learned.rule.policy = rule.policy;
        work.learned.rule.wildcard = rule.wildcard;
        work.key.policy = rule.policy;
        // By reference: by value, both would be copied onto the stack byte by byte first.
        #[allow(clippy::needless_borrows_for_generic_args)]
        let _ = EGRESS_HOSTS.insert(&work.key, &work.learned, 0);
    }
}
