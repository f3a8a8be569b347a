package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"

	arrowpb "github.com/open-telemetry/otel-arrow/go/api/experimental/arrow/v1"
	"github.com/open-telemetry/otel-arrow/go/pkg/config"
	"github.com/open-telemetry/otel-arrow/go/pkg/otel/arrow_record"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"google.golang.org/protobuf/proto"
)

type produceLine struct {
	BarBytes     int      `json:"bar_bytes"`
	OTLPBytes    int      `json:"otlp_bytes"`
	Points       int      `json:"points"`
	LogRecords   int      `json:"log_records,omitempty"`
	BatchID      int64    `json:"batch_id"`
	PayloadTypes []string `json:"payload_types"`
	Bar          string   `json:"bar,omitempty"`
}

// runProduce encodes OTLP JSON requests (one per line) with a single
// Producer, as one Arrow stream would, and reports the size of each BAR.
func runProduce(args []string) error {
	fs := flag.NewFlagSet("sink produce", flag.ContinueOnError)
	signal := fs.String("signal", "metrics", "metrics|logs")
	noZstd := fs.Bool("no-zstd", false, "disable Arrow IPC zstd compression (on by default, as in the Go exporter)")
	withBar := fs.Bool("with-bar", false, "also print each BAR's protobuf bytes, base64, as \"bar\"")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: sink produce [-signal metrics|logs] [-no-zstd] [-with-bar] FILE|-")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || (*signal != "metrics" && *signal != "logs") {
		fs.Usage()
		return fmt.Errorf("bad arguments")
	}
	var in io.Reader = os.Stdin
	if name := fs.Arg(0); name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		in = f
	}
	var opts []config.Option
	if *noZstd {
		opts = append(opts, config.WithNoZstd())
	}
	producer := arrow_record.NewProducerWithOptions(opts...)
	defer func() { _ = producer.Close() }()

	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 1<<20), 1<<30)
	out := bufio.NewWriter(os.Stdout)
	defer func() { _ = out.Flush() }()
	enc := json.NewEncoder(out)
	n := 0
	for sc.Scan() {
		n++
		raw := sc.Bytes()
		if len(raw) == 0 {
			continue
		}
		var bar *arrowpb.BatchArrowRecords
		var res produceLine
		if *signal == "metrics" {
			md, err := (&pmetric.JSONUnmarshaler{}).UnmarshalMetrics(raw)
			if err != nil {
				return fmt.Errorf("line %d: %w", n, err)
			}
			res.Points = md.DataPointCount()
			res.OTLPBytes = (&pmetric.ProtoMarshaler{}).MetricsSize(md)
			if bar, err = encodeSafely(func() (*arrowpb.BatchArrowRecords, error) {
				return producer.BatchArrowRecordsFromMetrics(md)
			}); err != nil {
				return fmt.Errorf("line %d: encode: %w", n, err)
			}
		} else {
			ld, err := (&plog.JSONUnmarshaler{}).UnmarshalLogs(raw)
			if err != nil {
				return fmt.Errorf("line %d: %w", n, err)
			}
			res.LogRecords = ld.LogRecordCount()
			res.Points = res.LogRecords
			res.OTLPBytes = (&plog.ProtoMarshaler{}).LogsSize(ld)
			if bar, err = encodeSafely(func() (*arrowpb.BatchArrowRecords, error) {
				return producer.BatchArrowRecordsFromLogs(ld)
			}); err != nil {
				return fmt.Errorf("line %d: encode: %w", n, err)
			}
		}
		res.BarBytes = proto.Size(bar)
		res.BatchID = bar.GetBatchId()
		res.PayloadTypes = payloadTypes(bar)
		if *withBar {
			b, err := proto.Marshal(bar)
			if err != nil {
				return err
			}
			res.Bar = base64.StdEncoding.EncodeToString(b)
		}
		if err := enc.Encode(res); err != nil {
			return err
		}
		if err := out.Flush(); err != nil {
			return err
		}
	}
	return sc.Err()
}

// encodeSafely turns a producer panic (v0.50.0 panics on batches of more than
// 65535 records; v0.51.0 returns an error) into an error.
func encodeSafely(fn func() (*arrowpb.BatchArrowRecords, error)) (bar *arrowpb.BatchArrowRecords, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("producer panic: %v", r)
		}
	}()
	return fn()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
