package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The machine is shared: other jobs take CPU time from the server, the load
// generator and the limit measurements, and not in proportion (a process
// with more runnable threads gets a larger share). Beside the wall-clock
// rates, idp-load therefore counts the CPU time each figure cost: requests
// per CPU-second of server and load generator together, and signatures or
// hashes per CPU-second, each times the number of cores, estimate the same
// figure on a machine that nothing else uses. They are meaningful for
// CPU-bound work only: a figure bounded by a lock or by waiting looks better
// per CPU-second than it is.

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// cpuSample is a moment's CPU counters.
type cpuSample struct {
	self   time.Duration // this process, user + system
	server time.Duration // the server's process, user + system; 0 without a pid
	db     time.Duration // the part of server spent by the database server
	busy   time.Duration // the whole machine, all cores, not idle
	ok     bool          // the machine's (and with a pid the server's) counters were read
}

// sampleCPU reads the counters. The server's time is the sum over pids
// (idp, and on MySQL or PostgreSQL the database server); none leaves it
// out. Every pid after the first is a database server's, counted with its
// child processes (PostgreSQL's backends; see processTreeCPU).
func sampleCPU(pids ...int) cpuSample {
	var s cpuSample
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	busy, err := machineBusy()
	s.ok = err == nil
	s.busy = busy
	for i, pid := range pids {
		if pid <= 0 {
			continue
		}
		read := processCPU
		if i > 0 {
			read = processTreeCPU
		}
		t, err := read(pid)
		s.server += t
		if i > 0 {
			s.db += t
		}
		s.ok = s.ok && err == nil
	}
	return s
}

// findDatabasePID returns the process id of the local database server of
// engine, or 0 when there is not exactly one: MariaDB's or MySQL's one
// process, or PostgreSQL's postmaster (a postgres process whose parent is
// not one), whose backends processTreeCPU counts with it.
func findDatabasePID(engine string) int {
	dirs, _ := os.ReadDir("/proc")
	found := 0
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		name := processName(pid)
		var match bool
		switch engine {
		case "mysql":
			match = name == "mariadbd" || name == "mysqld"
		case "postgres":
			match = name == "postgres" && processName(parentPID(pid)) != "postgres"
		}
		if match {
			if found != 0 {
				return 0
			}
			found = pid
		}
	}
	return found
}

func processName(pid int) string {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(comm))
}

// parentPID is field 4 of /proc/<pid>/stat, or 0.
func parentPID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := statFields(string(b))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// processTreeCPU is the CPU time of pid, of its live children and of the
// children it has reaped: PostgreSQL runs each connection in a process
// that the postmaster forks and reaps. For a process without children
// (MariaDB's threads are one process) it is processCPU.
func processTreeCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	own, err := parseProcStat(string(b))
	if err != nil {
		return 0, err
	}
	reaped, err := parseReapedCPU(string(b))
	if err != nil {
		return 0, err
	}
	total := own + reaped
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		child, err := strconv.Atoi(d.Name())
		if err != nil || child == pid || parentPID(child) != pid {
			continue
		}
		if t, err := processCPU(child); err == nil { // a child may end meanwhile
			total += t
		}
	}
	return total, nil
}

// statFields are the fields of a /proc/<pid>/stat line after the command
// name in parentheses (which may hold spaces): f[0] is field 3, the state.
func statFields(line string) []string {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(line[i+1:])
}

// parseReapedCPU reads cutime and cstime (fields 16 and 17): the CPU time
// of children the process waited for.
func parseReapedCPU(line string) (time.Duration, error) {
	f := statFields(line)
	if len(f) < 15 {
		return 0, fmt.Errorf("/proc stat: %d fields", len(f)+2)
	}
	cu, err1 := strconv.ParseInt(f[13], 10, 64)
	cs, err2 := strconv.ParseInt(f[14], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc stat: bad cutime or cstime")
	}
	return time.Duration(cu+cs) * time.Second / clockTicks, nil
}

// cpuUse is what a stretch of time cost.
type cpuUse struct {
	server, db, client, others, wall time.Duration
}

func (a cpuSample) until(b cpuSample, wall time.Duration) (cpuUse, bool) {
	if !a.ok || !b.ok {
		return cpuUse{}, false
	}
	u := cpuUse{server: b.server - a.server, db: b.db - a.db, client: b.self - a.self, wall: wall}
	u.others = max(b.busy-a.busy-u.server-u.client, 0)
	return u, true
}

func (u *cpuUse) add(v cpuUse) {
	u.server += v.server
	u.db += v.db
	u.client += v.client
	u.others += v.others
	u.wall += v.wall
}

// processCPU is the user and system time of pid, from /proc/<pid>/stat.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStat(string(b))
}

// parseProcStat reads utime and stime (fields 14 and 15) of a
// /proc/<pid>/stat line. The command name in parentheses may hold spaces, so
// fields are counted from its closing parenthesis.
func parseProcStat(line string) (time.Duration, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat: no command name")
	}
	f := strings.Fields(line[i+1:])
	// f[0] is field 3 (state), so utime (14) is f[11] and stime (15) f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields", len(f)+2)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc stat: bad utime or stime")
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// machineBusy is the CPU time all cores spent not idle, from /proc/stat.
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseMachineStat(string(b))
}

// parseMachineStat sums the first "cpu" line of /proc/stat except idle and
// iowait (guest time is already in user).
func parseMachineStat(text string) (time.Duration, error) {
	line, _, _ := strings.Cut(text, "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: no cpu line")
	}
	var busy int64
	for i, v := range f[1:min(len(f), 9)] { // user nice system idle iowait irq softirq steal
		if i == 3 || i == 4 {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %q", v)
		}
		busy += n
	}
	return time.Duration(busy) * time.Second / clockTicks, nil
}
