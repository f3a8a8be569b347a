package main

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// accept records one OTLP request and returns the status to answer with.
func (s *sink) accept(signal, via string, size int, headers map[string]string, data []byte) (codes.Code, string) {
	code, msg := s.faults.verdict(data)
	s.rec.write(line{
		Signal: signal, Via: via, BatchID: -1, Stream: 0, Bytes: size, Headers: headers,
		Rejected: code != codes.OK, Status: statusName(code), Error: msg, Data: data,
	})
	return code, msg
}

func grpcHeaders(ctx context.Context) map[string]string {
	h := map[string]string{}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		joinHeaders(md, h)
	}
	return h
}

type otlpMetricsServer struct {
	pmetricotlp.UnimplementedGRPCServer
	s *sink
}

func (o *otlpMetricsServer) Export(ctx context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	md := req.Metrics()
	data, err := (&pmetric.JSONMarshaler{}).MarshalMetrics(md)
	if err != nil {
		return pmetricotlp.NewExportResponse(), status.Error(codes.Internal, err.Error())
	}
	size := (&pmetric.ProtoMarshaler{}).MetricsSize(md)
	if code, msg := o.s.accept("metrics", "otlp_grpc", size, grpcHeaders(ctx), data); code != codes.OK {
		return pmetricotlp.NewExportResponse(), status.Error(code, msg)
	}
	return pmetricotlp.NewExportResponse(), nil
}

type otlpLogsServer struct {
	plogotlp.UnimplementedGRPCServer
	s *sink
}

func (o *otlpLogsServer) Export(ctx context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	ld := req.Logs()
	data, err := (&plog.JSONMarshaler{}).MarshalLogs(ld)
	if err != nil {
		return plogotlp.NewExportResponse(), status.Error(codes.Internal, err.Error())
	}
	size := (&plog.ProtoMarshaler{}).LogsSize(ld)
	if code, msg := o.s.accept("logs", "otlp_grpc", size, grpcHeaders(ctx), data); code != codes.OK {
		return plogotlp.NewExportResponse(), status.Error(code, msg)
	}
	return plogotlp.NewExportResponse(), nil
}

const maxHTTPBody = 64 << 20

// httpCode maps a refusal to the OTLP/HTTP status code.
func httpCode(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	default:
		return http.StatusInternalServerError
	}
}

// otlpHTTP handles POST /v1/metrics and /v1/logs (protobuf or JSON bodies,
// optionally gzip-compressed).
func (s *sink) otlpHTTP(signal string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		ctype := strings.ToLower(strings.TrimSpace(strings.Split(r.Header.Get("Content-Type"), ";")[0]))
		isJSON := ctype == "application/json"
		if !isJSON && ctype != "application/x-protobuf" {
			http.Error(w, "unsupported content type "+ctype, http.StatusUnsupportedMediaType)
			return
		}
		var body io.Reader = http.MaxBytesReader(w, r.Body, maxHTTPBody)
		switch enc := strings.ToLower(r.Header.Get("Content-Encoding")); enc {
		case "", "identity":
		case "gzip":
			zr, err := gzip.NewReader(body)
			if err != nil {
				s.writeHTTPStatus(w, isJSON, codes.InvalidArgument, "bad gzip body: "+err.Error())
				return
			}
			defer func() { _ = zr.Close() }()
			body = io.LimitReader(zr, maxHTTPBody)
		default:
			http.Error(w, "unsupported content encoding "+enc, http.StatusUnsupportedMediaType)
			return
		}
		raw, err := io.ReadAll(body)
		if err != nil {
			s.writeHTTPStatus(w, isJSON, codes.InvalidArgument, "cannot read body: "+err.Error())
			return
		}
		headers := map[string]string{}
		joinHeaders(r.Header, headers)

		var data, resp []byte
		var size int
		if signal == "metrics" {
			req := pmetricotlp.NewExportRequest()
			if isJSON {
				err = req.UnmarshalJSON(raw)
			} else {
				err = req.UnmarshalProto(raw)
			}
			if err == nil {
				size = (&pmetric.ProtoMarshaler{}).MetricsSize(req.Metrics())
				data, err = (&pmetric.JSONMarshaler{}).MarshalMetrics(req.Metrics())
			}
			if isJSON {
				resp, _ = pmetricotlp.NewExportResponse().MarshalJSON()
			} else {
				resp, _ = pmetricotlp.NewExportResponse().MarshalProto()
			}
		} else {
			req := plogotlp.NewExportRequest()
			if isJSON {
				err = req.UnmarshalJSON(raw)
			} else {
				err = req.UnmarshalProto(raw)
			}
			if err == nil {
				size = (&plog.ProtoMarshaler{}).LogsSize(req.Logs())
				data, err = (&plog.JSONMarshaler{}).MarshalLogs(req.Logs())
			}
			if isJSON {
				resp, _ = plogotlp.NewExportResponse().MarshalJSON()
			} else {
				resp, _ = plogotlp.NewExportResponse().MarshalProto()
			}
		}
		if err != nil {
			msg := "cannot decode request: " + err.Error()
			s.rec.write(line{Signal: signal, Via: "otlp_http", BatchID: -1, Bytes: len(raw), Headers: headers,
				Rejected: true, Status: "INVALID_ARGUMENT", Error: msg})
			s.writeHTTPStatus(w, isJSON, codes.InvalidArgument, msg)
			return
		}
		if code, msg := s.accept(signal, "otlp_http", size, headers, data); code != codes.OK {
			s.writeHTTPStatus(w, isJSON, code, msg)
			return
		}
		if isJSON {
			w.Header().Set("Content-Type", "application/json")
		} else {
			w.Header().Set("Content-Type", "application/x-protobuf")
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(resp)
	}
}

// writeHTTPStatus answers with a google.rpc.Status body, as OTLP/HTTP specifies.
func (s *sink) writeHTTPStatus(w http.ResponseWriter, isJSON bool, code codes.Code, msg string) {
	st := status.New(code, msg).Proto()
	if isJSON {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(httpCode(code))
		b, _ := json.Marshal(map[string]any{"code": int(code), "message": msg})
		_, _ = w.Write(b)
		return
	}
	b, err := proto.Marshal(st)
	if err != nil {
		http.Error(w, msg, httpCode(code))
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(httpCode(code))
	_, _ = w.Write(b)
}
