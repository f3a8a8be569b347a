package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	arrowpb "github.com/open-telemetry/otel-arrow/go/api/experimental/arrow/v1"
	"github.com/open-telemetry/otel-arrow/go/pkg/otel/arrow_record"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// barStream is what the generated ArrowMetrics and ArrowLogs server streams
// have in common.
type barStream interface {
	Context() context.Context
	Send(*arrowpb.BatchStatus) error
	Recv() (*arrowpb.BatchArrowRecords, error)
}

// decodeFunc turns one BAR into OTLP JSON using the stream's consumer.
type decodeFunc func(c *arrow_record.Consumer, bar *arrowpb.BatchArrowRecords) ([]byte, error)

func decodeMetrics(c *arrow_record.Consumer, bar *arrowpb.BatchArrowRecords) ([]byte, error) {
	parts, err := c.MetricsFrom(bar)
	if err != nil {
		return nil, err
	}
	all := pmetric.NewMetrics()
	for _, m := range parts {
		m.ResourceMetrics().MoveAndAppendTo(all.ResourceMetrics())
	}
	return (&pmetric.JSONMarshaler{}).MarshalMetrics(all)
}

func decodeLogs(c *arrow_record.Consumer, bar *arrowpb.BatchArrowRecords) ([]byte, error) {
	parts, err := c.LogsFrom(bar)
	if err != nil {
		return nil, err
	}
	all := plog.NewLogs()
	for _, l := range parts {
		l.ResourceLogs().MoveAndAppendTo(all.ResourceLogs())
	}
	return (&plog.JSONMarshaler{}).MarshalLogs(all)
}

// safeDecode turns a decoder panic into an error, as the real receiver does.
func safeDecode(fn decodeFunc, c *arrow_record.Consumer, bar *arrowpb.BatchArrowRecords) (data []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in decoder: %v", r)
		}
	}()
	return fn(c, bar)
}

type arrowMetricsServer struct {
	arrowpb.UnimplementedArrowMetricsServiceServer
	s *sink
}

func (a *arrowMetricsServer) ArrowMetrics(stream arrowpb.ArrowMetricsService_ArrowMetricsServer) error {
	return a.s.serveArrow(stream, "metrics", decodeMetrics)
}

type arrowLogsServer struct {
	arrowpb.UnimplementedArrowLogsServiceServer
	s *sink
}

func (a *arrowLogsServer) ArrowLogs(stream arrowpb.ArrowLogsService_ArrowLogsServer) error {
	return a.s.serveArrow(stream, "logs", decodeLogs)
}

// serveArrow runs one Arrow gRPC stream: one Consumer and one HPACK decoder
// for its whole life, one BatchStatus per accepted or refused BAR.
// Decoding happens in receive order; acks are sent from goroutines (after
// ack_delay_ms), so, as with the real receiver, they may overtake each other.
func (s *sink) serveArrow(stream barStream, signal string, decode decodeFunc) error {
	if s.faults.get().Mode == "unimplemented" {
		return status.Errorf(codes.Unimplemented, "unknown service (sink mode=unimplemented)")
	}
	streamID := s.streamSeq.Add(1)
	consumer := arrow_record.NewConsumer()
	defer func() { _ = consumer.Close() }()

	streamHeaders := map[string]string{}
	if md, ok := metadata.FromIncomingContext(stream.Context()); ok {
		joinHeaders(md, streamHeaders)
	}
	hdec := hpack.NewDecoder(4096, nil)

	var sendMu sync.Mutex
	var inflight sync.WaitGroup
	// Answer every BAR accepted so far before the RPC ends, whatever the reason.
	defer inflight.Wait()

	received := 0
	for {
		bar, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		received++
		base := line{
			Signal: signal, Via: "otap", BatchID: bar.GetBatchId(), Stream: streamID,
			PayloadTypes: payloadTypes(bar), Bytes: proto.Size(bar),
		}
		cfg := s.faults.get()
		if cfg.DropStreamAfter > 0 && received >= cfg.DropStreamAfter {
			base.Rejected, base.Status = true, "UNAVAILABLE"
			base.Error = fmt.Sprintf("sink: drop_stream_after=%d", cfg.DropStreamAfter)
			base.Headers = streamHeaders
			s.rec.write(base)
			return status.Error(codes.Unavailable, base.Error)
		}
		headers, err := mergeBatchHeaders(hdec, streamHeaders, bar.GetHeaders())
		base.Headers = headers
		if err != nil {
			base.Rejected, base.Status, base.Error = true, "INTERNAL", "arrow metadata error: "+err.Error()
			s.rec.write(base)
			return status.Error(codes.Internal, base.Error)
		}
		var code codes.Code
		var msg string
		if len(bar.GetArrowPayloads()) == 0 {
			code, msg = codes.InvalidArgument, "unrecognized OTel-Arrow payload: empty BatchArrowRecords"
		} else {
			data, err := safeDecode(decode, consumer, bar)
			if err != nil {
				base.Rejected, base.Status, base.Error = true, "INTERNAL", "otel-arrow decode: "+err.Error()
				s.rec.write(base)
				return status.Error(codes.Internal, base.Error)
			}
			base.Data = data
			code, msg = s.faults.verdict(data)
		}
		base.Status, base.Error, base.Rejected = statusName(code), msg, code != codes.OK
		s.rec.write(base)

		inflight.Add(1)
		go func(batchID int64, code codes.Code, msg string, delay time.Duration) {
			defer inflight.Done()
			if delay > 0 {
				time.Sleep(delay)
			}
			sendMu.Lock()
			defer sendMu.Unlock()
			_ = stream.Send(&arrowpb.BatchStatus{
				BatchId: batchID, StatusCode: arrowpb.StatusCode(code), StatusMessage: msg,
			})
		}(bar.GetBatchId(), code, msg, time.Duration(cfg.AckDelayMS)*time.Millisecond)
	}
}

func payloadTypes(bar *arrowpb.BatchArrowRecords) []string {
	out := make([]string, 0, len(bar.GetArrowPayloads()))
	for _, p := range bar.GetArrowPayloads() {
		out = append(out, p.GetType().String())
	}
	return out
}

// mergeBatchHeaders decodes the BAR's HPACK block with the stream's decoder
// and lays it over the stream metadata (batch values win), as the receiver does.
func mergeBatchHeaders(dec *hpack.Decoder, stream map[string]string, block []byte) (map[string]string, error) {
	out := make(map[string]string, len(stream))
	for k, v := range stream {
		out[k] = v
	}
	if len(block) == 0 {
		return out, nil
	}
	fields, err := dec.DecodeFull(block)
	if err != nil {
		return out, err
	}
	batch := map[string][]string{}
	for _, f := range fields {
		k := strings.ToLower(f.Name)
		batch[k] = append(batch[k], f.Value)
	}
	joinHeaders(batch, out)
	return out, nil
}
