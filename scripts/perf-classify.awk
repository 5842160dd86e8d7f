# Splits one process's CPU samples by where they went, for the profiles in
# docs/performance.md. Input: `perf script -F tid,ip,sym --pid PID` of a
# `perf record -a -g` file. `-v stack=REGEX` names the stack's own symbols.
#
#   perf record -o p.data -a -g -F 999 -- target/release/ustack bench --only bulk-rx ...
#   perf script -i p.data --pid PID -F tid,ip,sym > s.txt
#   awk -v stack=ustack -f scripts/perf-classify.awk s.txt | sort -rn
#
# Classes are exclusive; the first that matches a sample's call chain wins.
BEGIN { RS = "" }
{
  n++
  split($0, L, "\n"); leaf = L[2]
  kernel = (leaf ~ /^[ \t]*ffffffff/)
  if ($0 ~ /tun_chr_read_iter/) c = "read(2) of the TAP (kernel)"
  else if ($0 ~ /tun_chr_write_iter/) c = "write(2) to the TAP (kernel: the peer's input and the output it triggers)"
  else if ($0 ~ /ppoll|do_sys_poll|do_select|futex/) c = "waiting: ppoll, pselect6, futex"
  else if (kernel && $0 ~ /irq|softirq/) c = "interrupts and softirqs (timers: the peer's pacing, TSQ)"
  else if (kernel) c = "other kernel (syscall entry/exit)"
  else if (leaf ~ stack) c = "the stack's own code (" stack ")"
  else c = "user: libc (read/write wrappers, memcpy), vdso"
  k[c]++
}
END { for (c in k) printf "%6d %5.1f%%  %s\n", k[c], 100 * k[c] / n, c; printf "%6d total\n", n }
