package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a process started with Start.
type proc struct {
	ns  string
	cmd *exec.Cmd
	log *os.File // nil when the caller set Stdout/Stderr
}

// Start starts cmd inside namespace ns: the fork happens on an OS thread
// locked into ns, so the child and its descendants live there. If cmd.Stdout
// and cmd.Stderr are both nil, output goes to <Dir>/logs/<ns>.<program>.log
// (see LogPath). The pid is appended to <Dir>/pids so a later `lab down` can
// find it after a crash. The caller may Wait on cmd; Close stops it anyway.
func (l *Lab) Start(ns string, cmd *exec.Cmd) error {
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return errors.New("lab start: the lab is closed")
	}
	p := &proc{ns: ns, cmd: cmd}
	if cmd.Stdout == nil && cmd.Stderr == nil {
		f, err := os.OpenFile(l.LogPath(ns, cmd.Path), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("lab start %s in %s: log file: %w", cmd.Path, ns, err)
		}
		cmd.Stdout, cmd.Stderr, p.log = f, f, f
	}
	if err := l.Do(ns, cmd.Start); err != nil {
		if p.log != nil {
			p.log.Close()
		}
		return fmt.Errorf("lab start %s in %s: %w", cmd.Path, ns, err)
	}
	line := fmt.Sprintf("%d %s %s\n", cmd.Process.Pid, ns, filepath.Base(cmd.Path))
	if f, err := os.OpenFile(filepath.Join(l.dir, "pids"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		f.WriteString(line)
		f.Close()
	}
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return nil
}

// LogPath returns the log file Start uses for program (a path or name) in ns.
func (l *Lab) LogPath(ns, program string) string {
	return filepath.Join(l.dir, "logs", ns+"."+filepath.Base(program)+".log")
}

// stopProcs sends SIGTERM to every live process, waits up to grace for them
// to exit, then sends SIGKILL to the rest.
func stopProcs(procs []*proc, grace time.Duration) {
	var live []*proc
	for _, p := range procs {
		if p.cmd.Process != nil && alive(p.cmd.Process.Pid) {
			p.cmd.Process.Signal(syscall.SIGTERM)
			live = append(live, p)
		}
	}
	deadline := time.Now().Add(grace)
	for len(live) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		n := 0
		for _, p := range live {
			if alive(p.cmd.Process.Pid) {
				live[n] = p
				n++
			}
		}
		live = live[:n]
	}
	for _, p := range live {
		p.cmd.Process.Kill()
	}
	for _, p := range procs {
		if p.log != nil {
			p.log.Close()
		}
	}
}

// alive reports whether pid runs (a zombie counts as dead).
func alive(pid int) bool {
	f, ok := statFields(pid)
	return ok && f[0] != "Z" && f[0] != "X"
}

// statFields returns the fields of /proc/PID/stat after the command (which
// may hold spaces): f[0] is the state, f[11] and f[12] utime and stime.
// False when pid is gone or the line is short.
func statFields(pid int) ([]string, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	i := bytes.LastIndexByte(b, ')')
	if err != nil || i < 0 {
		return nil, false
	}
	f := strings.Fields(string(b[i+1:]))
	return f, len(f) >= 13
}

// nsInode returns the inode identifying a network namespace file.
func nsInode(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// pidsIn returns the processes whose network namespace is one of inodes.
func pidsIn(inodes map[uint64]bool) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		ino, err := nsInode(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil || !inodes[ino] {
			continue
		}
		out = append(out, pid)
	}
	return out
}

// labNamespaces lists the namespaces in /run/netns that belong to prefix.
func labNamespaces(prefix string) []string {
	ents, err := os.ReadDir(netnsDir)
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return matchLab(prefix, names)
}

// matchLab keeps the names <prefix>-<role> with a lab role (sw, client,
// server, n<i>), so Cleanup("rw") never touches "rw-x-n1" or "rwa-sw".
func matchLab(prefix string, names []string) []string {
	var out []string
	for _, n := range names {
		if rest, ok := strings.CutPrefix(n, prefix+"-"); ok && roleRE.MatchString(rest) {
			out = append(out, n)
		}
	}
	return out
}

// teardown kills every process in the lab's namespaces, deletes the
// namespaces and the state directory.
func teardown(prefix, dir string) error {
	names := labNamespaces(prefix)
	inodes := map[uint64]bool{}
	for _, n := range names {
		if ino, err := nsInode(filepath.Join(netnsDir, n)); err == nil {
			inodes[ino] = true
		}
	}
	if len(inodes) > 0 {
		pids := pidsIn(inodes)
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		deadline := time.Now().Add(2 * time.Second)
		for _, pid := range pids {
			for alive(pid) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	var errs []error
	for _, n := range names {
		if err := deleteNamed(n); err != nil {
			errs = append(errs, err)
		}
	}
	if dir != "" {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove lab state %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

// Cleanup removes what a crashed run with this prefix left behind: it kills
// every process inside the lab's namespaces (found through /proc, so children
// of the recorded pids are caught too), deletes the namespaces <prefix>-sw,
// -client, -server, -n<i> (their veths and bridges go with them) and the state
// directory <stateDir>/<prefix> (stateDir "" means DefaultStateDir). A prefix
// with nothing left is not an error.
func Cleanup(prefix, stateDir string) error {
	if !prefixRE.MatchString(prefix) {
		return fmt.Errorf("lab cleanup: bad prefix %q: use 1-24 letters, digits, '_' or '-'", prefix)
	}
	if stateDir == "" {
		stateDir = DefaultStateDir
	}
	return teardown(prefix, filepath.Join(stateDir, prefix))
}

// List returns the prefixes of the labs that have namespaces or a state
// directory on this machine (stateDir "" means DefaultStateDir).
func List(stateDir string) []string {
	if stateDir == "" {
		stateDir = DefaultStateDir
	}
	seen := map[string]bool{}
	if ents, err := os.ReadDir(stateDir); err == nil {
		for _, e := range ents {
			if e.IsDir() {
				seen[e.Name()] = true
			}
		}
	}
	if ents, err := os.ReadDir(netnsDir); err == nil {
		for _, e := range ents {
			if p, ok := strings.CutSuffix(e.Name(), "-"+roleSwitch); ok {
				seen[p] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sortStrings(out)
	return out
}

// Pids returns the processes running inside namespace ns (found through
// /proc, so it includes processes the lab did not start).
func (l *Lab) Pids(ns string) ([]int, error) {
	ino, err := nsInode(l.NetnsPath(ns))
	if err != nil {
		return nil, fmt.Errorf("netns %s: %w", ns, err)
	}
	return pidsIn(map[uint64]bool{ino: true}), nil
}

// CPU returns the CPU time (user and system) the processes now inside
// namespace ns have used so far, from /proc/PID/stat; a process that ends
// while it is read is left out.
func (l *Lab) CPU(ns string) (time.Duration, error) {
	pids, err := l.Pids(ns)
	if err != nil {
		return 0, err
	}
	var ticks uint64
	for _, pid := range pids {
		if f, ok := statFields(pid); ok {
			u, _ := strconv.ParseUint(f[11], 10, 64)
			st, _ := strconv.ParseUint(f[12], 10, 64)
			ticks += u + st
		}
	}
	return time.Duration(ticks) * time.Second / 100, nil // USER_HZ is 100 on Linux
}

// Stopped reports whether namespace ns has processes and every one of them
// is stopped (state T: SIGSTOP).
func (l *Lab) Stopped(ns string) bool {
	pids, _ := l.Pids(ns)
	for _, pid := range pids {
		if f, ok := statFields(pid); !ok || f[0] != "T" {
			return false
		}
	}
	return len(pids) > 0
}

// Switches returns the context switches (voluntary and not) of every
// thread of the processes now inside namespace ns: a wake-up count that,
// unlike CPU time, does not grow with the machine's load.
func (l *Lab) Switches(ns string) (uint64, error) {
	pids, err := l.Pids(ns)
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, pid := range pids {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
		for _, t := range tasks {
			b, err := os.ReadFile(t)
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(b), "\n") {
				if f := strings.Fields(line); len(f) == 2 && strings.HasSuffix(f[0], "ctxt_switches:") {
					v, _ := strconv.ParseUint(f[1], 10, 64)
					n += v
				}
			}
		}
	}
	return n, nil
}

// Signal sends sig to every process inside namespace ns and returns how many
// it signalled: SIGKILL simulates a crash of a node's software, SIGSTOP a
// hang (SIGCONT resumes it).
func (l *Lab) Signal(ns string, sig syscall.Signal) (int, error) {
	pids, err := l.Pids(ns)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, pid := range pids {
		if err := syscall.Kill(pid, sig); err != nil {
			if !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, fmt.Errorf("signal %v to pid %d in %s: %w", sig, pid, ns, err))
			}
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// WaitGone waits until no process runs inside namespace ns, or ctx ends.
func (l *Lab) WaitGone(ctx context.Context, ns string) error {
	for {
		pids, err := l.Pids(ns)
		if err != nil {
			return err
		}
		live := 0
		for _, p := range pids {
			if alive(p) {
				live++
			}
		}
		if live == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d processes still running in %s: %w", live, ns, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
