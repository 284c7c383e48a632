package benchimport

import (
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is Linux's USER_HZ, the unit of the CPU times in /proc/PID/stat: 100 on every
// architecture Go supports (the kernel's own HZ may differ; the user-space ABI does not).
const clockTicks = 100

// watchPostgres follows the CPU time of the PostgreSQL backends serving the run's database, on
// this machine, until the returned function is called, which gives their total. The import
// process's own CPU time says only half of where a run's time goes on two cores: the other
// half is the server. Backends are found by their process title ("postgres: … DB host(port)
// STATE") and read every 50 ms, each at its highest value seen, so a backend's last 50 ms
// before it exits may be missed. Not PostgreSQL, or no /proc: the function gives 0.
func (o *options) watchPostgres(c bcase) (stop func() time.Duration) {
	if c.backend != "postgres" {
		return func() time.Duration { return 0 }
	}
	u, err := url.Parse(o.pgURL)
	db := strings.TrimPrefix(u.Path, "/")
	if err != nil || db == "" {
		return func() time.Duration { return 0 }
	}
	marker := []byte(" " + db + " ")
	seen := map[int]int64{} // pid → highest user+system ticks read
	var mu sync.Mutex
	read := func() {
		dirs, _ := filepath.Glob("/proc/[0-9]*")
		for _, d := range dirs {
			title, err := os.ReadFile(d + "/cmdline")
			if err != nil || !bytes.HasPrefix(title, []byte("postgres: ")) || !bytes.Contains(title, marker) {
				continue
			}
			ticks, ok := cpuTicks(d)
			pid, _ := strconv.Atoi(filepath.Base(d))
			mu.Lock()
			if ok && ticks > seen[pid] {
				seen[pid] = ticks
			}
			mu.Unlock()
		}
	}
	stopPoll := poll(50*time.Millisecond, read)
	return func() time.Duration {
		stopPoll()
		read()
		mu.Lock()
		defer mu.Unlock()
		var total int64
		for _, t := range seen {
			total += t
		}
		return time.Duration(total) * time.Second / clockTicks
	}
}

// cpuTicks reads the user and system CPU time of the process at /proc/PID (dir) in clock ticks.
func cpuTicks(dir string) (int64, bool) {
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) is in parentheses and may hold spaces: fields count from
	// after its closing parenthesis, where field 3 (state) is the first.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return utime + stime, true
}
