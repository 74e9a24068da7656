package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100 on every
// Linux architecture Go runs on (the kernel scales its internal HZ to it for userspace).
const clockTick = 10 * time.Millisecond

// ParseStatCPU returns utime+stime from the contents of /proc/<pid>/stat. The command
// name (field 2) is in parentheses and may hold spaces or parentheses itself, so the
// fields are counted from the last ')'.
func ParseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat: no ')' closing the command name")
	}
	// After ")": state(3) ppid(4) … utime(14) stime(15): utime is the 12th field here.
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the command name, want at least 13", len(f))
	}
	utime, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat: utime %q: %w", f[11], err)
	}
	stime, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat: stime %q: %w", f[12], err)
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// ProcessCPU is the CPU time pid has used so far (its threads included; its children not).
func ProcessCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return ParseStatCPU(raw)
}

// ParseStatusKB returns the value in kB of field (e.g. "VmHWM", "VmRSS") from the
// contents of /proc/<pid>/status.
func ParseStatusKB(status []byte, field string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), field+":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("status: %s %q: %w", field, v, err)
		}
		return kb, nil
	}
	return 0, fmt.Errorf("status: no %s line", field)
}

// ProcessMemMB reads field (VmHWM: the peak resident set; VmRSS: the current one) of pid
// in MB (10^6 bytes, as the goals are written).
func ProcessMemMB(pid int, field string) (float64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	kb, err := ParseStatusKB(raw, field)
	return float64(kb) * 1024 / 1e6, err
}

// cpuMeter samples the CPU time of named processes at the start and end of a window.
type cpuMeter struct {
	pids  map[string]int
	start map[string]time.Duration
}

func newCPUMeter(pids map[string]int) (*cpuMeter, error) {
	m := &cpuMeter{pids: pids, start: map[string]time.Duration{}}
	for name, pid := range pids {
		t, err := ProcessCPU(pid)
		if err != nil {
			return nil, fmt.Errorf("cpu of %s: %w", name, err)
		}
		m.start[name] = t
	}
	return m, nil
}

// used returns the CPU each process spent since newCPUMeter.
func (m *cpuMeter) used() (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for name, pid := range m.pids {
		t, err := ProcessCPU(pid)
		if err != nil {
			return nil, fmt.Errorf("cpu of %s: %w", name, err)
		}
		out[name] = t - m.start[name]
	}
	return out, nil
}
