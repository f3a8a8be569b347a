package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
)

// line is one line of the out file. Accepted batches have Rejected=false and
// carry Data; rejected ones carry Rejected=true, the status they were answered
// with and, when the batch could be decoded, its Data too.
type line struct {
	Signal       string            `json:"signal"`
	Via          string            `json:"via"`
	BatchID      int64             `json:"batch_id"`
	Stream       int64             `json:"stream"`
	PayloadTypes []string          `json:"payload_types"`
	Bytes        int               `json:"bytes"`
	Headers      map[string]string `json:"headers"`
	Rejected     bool              `json:"rejected"`
	Status       string            `json:"status"`
	Error        string            `json:"error,omitempty"`
	TimeUnixNano int64             `json:"time_unix_nano"`
	Data         json.RawMessage   `json:"data,omitempty"`
}

// recorder appends JSON lines to the out file. Each line is written with a
// single unbuffered write, so a reader never sees a partial line once the
// writer acknowledged the batch.
type recorder struct {
	mu sync.Mutex
	w  io.Writer
}

// seal takes the write lock for good. Process exit kills handler goroutines
// wherever they are, and a write(2) cut short by exit leaves half a line that
// the next sink on the same out file would glue its first line onto; holding
// the lock means no write is in flight at exit. A handler still waiting for
// the lock never acknowledges its batch, so the client sends it again.
func (r *recorder) seal() {
	r.mu.Lock()
}

func (r *recorder) write(l line) {
	if l.PayloadTypes == nil {
		l.PayloadTypes = []string{}
	}
	if l.Headers == nil {
		l.Headers = map[string]string{}
	}
	l.TimeUnixNano = time.Now().UnixNano()
	b, err := json.Marshal(l)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sink: cannot marshal out line: %v\n", err)
		return
	}
	b = append(b, '\n')
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.w.Write(b); err != nil {
		fmt.Fprintf(os.Stderr, "sink: cannot write out line: %v\n", err)
	}
}

// settings are the fault-injection knobs; see README.md.
type settings struct {
	Mode                  string  `json:"mode"`
	RandomUnavailable     float64 `json:"random_unavailable"`
	RejectBatchContaining string  `json:"reject_batch_containing"`
	DropStreamAfter       int     `json:"drop_stream_after"`
	AckDelayMS            int     `json:"ack_delay_ms"`
	OTLPOnly              bool    `json:"otlp_only"`
}

func (s settings) validate() error {
	switch s.Mode {
	case "ok", "unavailable", "invalid_argument", "unimplemented":
	default:
		return fmt.Errorf("mode must be ok|unavailable|invalid_argument|unimplemented, got %q", s.Mode)
	}
	if s.RandomUnavailable < 0 || s.RandomUnavailable > 1 {
		return fmt.Errorf("random_unavailable must be in [0, 1], got %v", s.RandomUnavailable)
	}
	if s.DropStreamAfter < 0 || s.AckDelayMS < 0 {
		return fmt.Errorf("drop_stream_after and ack_delay_ms must be >= 0")
	}
	return nil
}

// faults holds the current settings and the seeded random source.
type faults struct {
	mu  sync.Mutex
	cur settings
	rng *rand.Rand
}

func newFaults(s settings, seed int64) *faults {
	return &faults{cur: s, rng: rand.New(rand.NewSource(seed))}
}

func (f *faults) get() settings {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur
}

// update applies a partial JSON object to the settings.
func (f *faults) update(body []byte) (settings, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	next := f.cur
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&next); err != nil {
		return f.cur, fmt.Errorf("bad control body: %w", err)
	}
	if next.OTLPOnly != f.cur.OTLPOnly {
		return f.cur, fmt.Errorf("otlp_only can only be set at start (-otlp-only)")
	}
	if err := next.validate(); err != nil {
		return f.cur, err
	}
	f.cur = next
	return next, nil
}

// verdict decides how to answer one decoded batch. data is its OTLP JSON.
func (f *faults) verdict(data []byte) (codes.Code, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch f.cur.Mode {
	case "unavailable":
		return codes.Unavailable, "sink: mode=unavailable"
	case "invalid_argument":
		return codes.InvalidArgument, "sink: mode=invalid_argument"
	}
	if needle := f.cur.RejectBatchContaining; needle != "" && strings.Contains(string(data), needle) {
		return codes.InvalidArgument, fmt.Sprintf("sink: batch contains %q", needle)
	}
	if p := f.cur.RandomUnavailable; p > 0 && f.rng.Float64() < p {
		return codes.Unavailable, "sink: random_unavailable"
	}
	return codes.OK, ""
}

// statusName renders a gRPC code the way the proto enums spell it
// (OK, UNAVAILABLE, INVALID_ARGUMENT, ...).
func statusName(c codes.Code) string {
	names := map[codes.Code]string{
		codes.OK: "OK", codes.Canceled: "CANCELED", codes.InvalidArgument: "INVALID_ARGUMENT",
		codes.DeadlineExceeded: "DEADLINE_EXCEEDED", codes.PermissionDenied: "PERMISSION_DENIED",
		codes.ResourceExhausted: "RESOURCE_EXHAUSTED", codes.Aborted: "ABORTED", codes.Internal: "INTERNAL",
		codes.Unavailable: "UNAVAILABLE", codes.Unauthenticated: "UNAUTHENTICATED",
		codes.Unimplemented: "UNIMPLEMENTED",
	}
	if n, ok := names[c]; ok {
		return n
	}
	return strings.ToUpper(c.String())
}

// joinHeaders flattens multi-valued metadata into "a, b" strings with
// lower-cased keys.
func joinHeaders(src map[string][]string, into map[string]string) {
	keys := make([]string, 0, len(src))
	for k := range src {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		into[strings.ToLower(k)] = strings.Join(src[k], ", ")
	}
}
