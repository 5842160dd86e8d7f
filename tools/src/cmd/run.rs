//! `ustack run -- PROGRAM ARGS...`: runs an unmodified, dynamically linked program with
//! its AF_INET/AF_INET6 sockets on ustack. It loads `libustack_preload.so` with
//! `LD_PRELOAD` and hands the library the global flags (link, address, gateway, MAC,
//! MTU, `--pcap`, `--seed`, every fault flag, `--trace`, `--trace-file`, `--stats`)
//! through `USTACK_*` variables
//! (`ustack_socket::env`); the library attaches to the link when the program opens its
//! first such socket. Statically linked and setuid programs are refused, since the
//! dynamic loader would not load the library into them, and Go programs, whose runtime
//! makes its socket system calls without libc.

use super::CmdResult;
use crate::global::GlobalArgs;
use clap::Args;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use ustack_socket::env::StackEnv;

/// The library's file name.
pub const LIBRARY: &str = "libustack_preload.so";

/// Arguments of `ustack run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The program and its arguments (after `--`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "PROGRAM"
    )]
    pub program: Vec<OsString>,
}

/// Help text with examples.
pub const AFTER_HELP: &str = "Examples:\n  \
    # inside a namespace with tap0 (kernel side 10.77.0.1/24):\n  \
    sudo ip netns exec NS ustack --tap tap0 --ip 10.77.0.2/24 run -- curl -o f http://10.77.0.1/f\n  \
    # 5% loss each way, replayable, with an annotated capture:\n  \
    sudo ustack --netns NS --tap tap0 --ip 10.77.0.2/24 --loss 0.05 --seed 7 --pcap x.pcapng \\\n      \
    run -- curl -o f http://10.77.0.1/f\n  \
    ustack dump x.pcapng\n\n\
    The library is looked for in $USTACK_PRELOAD_LIB, then next to the ustack binary.\n\
    --trace lines and the --stats report go to the program's stderr.";

/// Runs the program; its exit status becomes ours (128+N if signal N killed it).
pub fn run(global: &GlobalArgs, args: &RunArgs) -> CmdResult {
    let program = &args.program[0];
    let path = resolve(Path::new(program))
        .ok_or_else(|| format!("{}: not found in PATH", Path::new(program).display()))?;
    check_program(&path)?;
    let lib = library()?;
    let env = StackEnv {
        tap: global.tap.clone(),
        raw: global.raw.clone(),
        ip: global.ip(),
        gateway: global.gateway(),
        ip6: global.ip6(),
        gateway6: global.gateway6(),
        no_ipv6: global.no_ipv6,
        mac: global.mac,
        mtu: Some(global.mtu.into()),
        link: global.link_options(),
        // USTACK_BUSY_POLL, if set, passes through from our environment.
        busy_poll: None,
    };
    if env.tap.is_none() && env.raw.is_none() {
        return Err("`run` needs --tap NAME or --raw IFACE".into());
    }
    if env.ip.is_none() {
        return Err("`run` needs --ip ADDR/PREFIX".into());
    }
    let mut preload = lib.display().to_string();
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|o| !o.is_empty()) {
        preload = format!("{preload}:{}", old.to_string_lossy());
    }
    let mut cmd = std::process::Command::new(&path);
    cmd.arg0(program).args(&args.program[1..]);
    for name in ustack_socket::env::ALL {
        cmd.env_remove(name);
    }
    cmd.envs(env.to_vars()).env("LD_PRELOAD", preload);
    if global.trace {
        cmd.env(ustack_socket::env::TRACE, "1");
    }
    if let Some(f) = &global.trace_file {
        cmd.env(ustack_socket::env::TRACE_FILE, f).env(
            ustack_socket::env::TRACE_EVERY,
            global.trace_every.to_string(),
        );
    }
    if let Some(s) = global.stats {
        let v = match s {
            crate::global::StatsFormat::Text => "text",
            crate::global::StatsFormat::Json => "json",
        };
        cmd.env(ustack_socket::env::STATS, v);
    }
    // exec: the program takes our place (and pid), so signals and the exit status are
    // its own. Only an error comes back.
    let err = cmd.exec();
    Err(format!("cannot run {}: {err}", path.display()).into())
}

/// The program's path: as given if it has a slash, otherwise searched in PATH.
fn resolve(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return Some(program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Where `libustack_preload.so` is: `$USTACK_PRELOAD_LIB`, or next to this binary.
fn library() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("USTACK_PRELOAD_LIB") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("USTACK_PRELOAD_LIB={}: no such file", p.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the ustack binary: {e}"))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let candidate = dir.join(LIBRARY);
    if candidate.is_file() {
        return Ok(candidate);
    }
    Err(format!(
        "{LIBRARY} not found next to {} (build it with `cargo build -p ustack-preload`, or set USTACK_PRELOAD_LIB)",
        exe.display()
    ))
}

/// Why the dynamic loader would not load the library into the program, if it would not.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Set-user-ID or set-group-ID: the loader ignores LD_PRELOAD.
    Setuid,
    /// No program interpreter (PT_INTERP): statically linked, it never calls libc's
    /// socket functions through the loader (also most Go binaries).
    Static,
    /// A Go program (an ELF note named `Go`): its runtime makes socket system calls
    /// directly, bypassing libc even when it is dynamically linked (cgo).
    Go,
    /// Not an ELF file the loader runs directly.
    NotElf,
}

/// Refuses programs the library cannot reach, with a one-line reason.
fn check_program(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut head = Vec::new();
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // The ELF and program headers are at the start.
    std::io::Read::read_to_end(&mut std::io::Read::take(file, 64 * 1024), &mut head)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    match refusal(meta.permissions().mode(), &head) {
        None => Ok(()),
        Some(Refusal::Setuid) => Err(format!(
            "{}: set-user-ID/set-group-ID programs ignore LD_PRELOAD; refusing to run it on ustack",
            path.display()
        )),
        Some(Refusal::Go) => Err(format!(
            "{}: a Go program: its runtime makes socket system calls directly, bypassing the ustack library; refusing",
            path.display()
        )),
        Some(Refusal::Static) => Err(format!(
            "{}: statically linked (no ELF interpreter), so its socket calls bypass the ustack library (Go binaries are usually static); refusing",
            path.display()
        )),
        // A script: its interpreter (found by the kernel) gets the preload; that is
        // what `sh -c` and the pyenv shims need.
        Some(Refusal::NotElf) => Ok(()),
    }
}

/// The reason to refuse a program with file `mode` whose file starts with `head`.
pub fn refusal(mode: u32, head: &[u8]) -> Option<Refusal> {
    if mode & (libc::S_ISUID | libc::S_ISGID) != 0 {
        return Some(Refusal::Setuid);
    }
    if head.len() < 64 || &head[..4] != b"\x7fELF" {
        return Some(Refusal::NotElf);
    }
    let headers = program_headers(head);
    if headers
        .iter()
        .any(|h| h.kind == PT_NOTE && has_go_note(head, h))
    {
        Some(Refusal::Go)
    } else if headers.iter().any(|h| h.kind == PT_INTERP) {
        None
    } else {
        Some(Refusal::Static)
    }
}

const PT_INTERP: u32 = 3;
const PT_NOTE: u32 = 4;

/// The fields of an ELF program header this check reads.
struct ProgramHeader {
    kind: u32,
    offset: u64,
    size: u64,
}

/// Whether the note segment `h` (within the file's first bytes, `elf`) holds a note
/// named `Go` (the Go toolchain's build ID note).
fn has_go_note(elf: &[u8], h: &ProgramHeader) -> bool {
    let le = elf[5] == 1;
    let u32_at = |o: usize| -> Option<usize> {
        let b: [u8; 4] = elf.get(o..o.checked_add(4)?)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        } as usize)
    };
    let (Ok(start), Ok(size)) = (usize::try_from(h.offset), usize::try_from(h.size)) else {
        return false;
    };
    let end = start.saturating_add(size).min(elf.len());
    let mut at = start;
    // Each note: namesz, descsz, type, then name and desc, each padded to 4 bytes.
    while at.saturating_add(12) <= end {
        let (Some(namesz), Some(descsz)) = (u32_at(at), u32_at(at + 4)) else {
            return false;
        };
        let name = at + 12;
        // The Go linker names its note "Go" (namesz 4: "Go\0\0").
        if let Some(n) = elf.get(name..name.saturating_add(namesz)) {
            let trimmed = n
                .iter()
                .rposition(|&b| b != 0)
                .map_or(&n[..0], |i| &n[..=i]);
            if trimmed == b"Go" {
                return true;
            }
        }
        let pad = |n: usize| n.saturating_add(3) & !3;
        at = name.saturating_add(pad(namesz)).saturating_add(pad(descsz));
    }
    false
}

/// The program headers of an ELF image, as far as its first bytes (`elf`) hold them.
fn program_headers(elf: &[u8]) -> Vec<ProgramHeader> {
    let is64 = elf[4] == 2;
    let le = elf[5] == 1;
    let u16_at = |o: usize| -> Option<u64> {
        let b: [u8; 2] = elf.get(o..o + 2)?.try_into().ok()?;
        Some(if le {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        } as u64)
    };
    let u32_at = |o: usize| -> Option<u64> {
        let b: [u8; 4] = elf.get(o..o + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        } as u64)
    };
    let u64_at = |o: usize| -> Option<u64> {
        let b: [u8; 8] = elf.get(o..o + 8)?.try_into().ok()?;
        Some(if le {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        })
    };
    let (phoff, phentsize, phnum) = if is64 {
        (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    } else {
        (u32_at(0x1c), u16_at(0x2a), u16_at(0x2c))
    };
    let (Some(phoff), Some(size), Some(num)) = (phoff, phentsize, phnum) else {
        return Vec::new();
    };
    (0..num)
        .filter_map(|i| {
            let at = phoff.saturating_add(i.saturating_mul(size)) as usize;
            let kind = u32::try_from(u32_at(at)?).ok()?;
            let (offset, size) = if is64 {
                (u64_at(at + 8)?, u64_at(at + 32)?)
            } else {
                (u32_at(at + 4)?, u32_at(at + 16)?)
            };
            Some(ProgramHeader { kind, offset, size })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_static_setuid_and_scripts() {
        let sh = std::fs::read("/bin/sh").expect("/bin/sh");
        assert_eq!(refusal(0o755, &sh), None, "/bin/sh is dynamically linked");
        assert_eq!(refusal(0o4755, &sh), Some(Refusal::Setuid));
        // A 64-bit ELF header whose only program header is PT_LOAD: static.
        let mut elf = vec![0u8; 64 + 56];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        elf[64..68].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(refusal(0o755, &elf), Some(Refusal::Static));
        elf[64..68].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(refusal(0o755, &elf), None);
        assert_eq!(
            refusal(0o755, b"#!/bin/sh\necho hi\n"),
            Some(Refusal::NotElf)
        );
    }

    #[test]
    fn go_programs_are_refused_even_when_dynamically_linked() {
        // PT_INTERP, then a PT_NOTE segment at 0x100 holding a `Go` build ID note.
        let mut elf = vec![0u8; 0x200];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        elf[64..68].copy_from_slice(&3u32.to_le_bytes());
        let note = 64 + 56;
        elf[note..note + 4].copy_from_slice(&4u32.to_le_bytes());
        elf[note + 8..note + 16].copy_from_slice(&0x100u64.to_le_bytes());
        elf[note + 32..note + 40].copy_from_slice(&24u64.to_le_bytes());
        // namesz 4 ("Go\0\0", as the Go linker writes it), descsz 8, type 4, name, desc.
        elf[0x100..0x104].copy_from_slice(&4u32.to_le_bytes());
        elf[0x104..0x108].copy_from_slice(&8u32.to_le_bytes());
        elf[0x108..0x10c].copy_from_slice(&4u32.to_le_bytes());
        elf[0x10c..0x110].copy_from_slice(b"Go\0\0");
        assert_eq!(refusal(0o755, &elf), Some(Refusal::Go));
        // The same image with another note name is an ordinary dynamic program.
        elf[0x10c] = b'N';
        assert_eq!(refusal(0o755, &elf), None);
        // A note segment pointing past the bytes read, or a lying size: no panic.
        elf[note + 8..note + 16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(refusal(0o755, &elf), None);
        elf[note + 8..note + 16].copy_from_slice(&0x100u64.to_le_bytes());
        elf[0x100..0x104].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(refusal(0o755, &elf), None);
    }
}
