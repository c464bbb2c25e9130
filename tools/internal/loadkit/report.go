package loadkit

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Failures counts failed requests and keeps the last one's message; safe for concurrent use.
type Failures struct {
	mu    sync.Mutex
	count int
	last  string
}

func (f *Failures) Add(err string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count++
	f.last = err
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
