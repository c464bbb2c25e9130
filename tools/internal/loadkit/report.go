package loadkit

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// Failures counts failed requests, by kind, and keeps the last one's message; safe for
// concurrent use.
type Failures struct {
	mu    sync.Mutex
	count int
	last  string
	kinds map[string]int
}

var answered = regexp.MustCompile(`^[A-Z]+ \S+: (\d{3}) `)

// kind tells an answer (its status: the server said no, e.g. 503 when it sheds load) from a
// connection that failed (reset, refused, timed out): only the latter is a server fault.
func kind(err string) string {
	if m := answered.FindStringSubmatch(err); m != nil {
		return m[1]
	}
	for _, k := range []string{"reset", "refused", "timeout", "EOF"} {
		if strings.Contains(err, k) {
			return k
		}
	}
	return "other"
}

func (f *Failures) Add(err string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count++
	f.last = err
	if f.kinds == nil {
		f.kinds = map[string]int{}
	}
	f.kinds[kind(err)]++
}

// Kinds returns how many failed of each kind so far ("503", "reset", "timeout", ...).
func (f *Failures) Kinds() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, n := range f.kinds {
		out[k] = n
	}
	return out
}

// Snapshot returns how many failed so far and the last message ("" when none).
func (f *Failures) Snapshot() (int, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count, f.last
}

// Millis is a duration in milliseconds, to the microsecond.
func Millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Percentiles sorts ds and returns its p50, p99 and max, by nearest rank (the smallest value with
// at least p of the samples at or below it); all 0 for no samples.
func Percentiles(ds []float64) map[string]float64 {
	sort.Float64s(ds)
	at := func(p float64) float64 {
		if len(ds) == 0 {
			return 0
		}
		rank := int(p*float64(len(ds))+0.999999) - 1
		return ds[max(0, min(rank, len(ds)-1))]
	}
	return map[string]float64{"p50": at(0.50), "p99": at(0.99), "max": at(1)}
}

// Emit prints v as one JSON line on stdout (what the benchmark scripts parse).
func Emit(v map[string]any) {
	out, _ := json.Marshal(v)
	fmt.Println(string(out))
}
