// Command sink is a reference OTel-Arrow (OTAP) and OTLP receiver for
// edgecollect's interop tests. It decodes with the real Go consumer
// (arrow_record.Consumer) and writes everything it decoded to a JSON-lines
// file. See README.md.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	arrowpb "github.com/open-telemetry/otel-arrow/go/api/experimental/arrow/v1"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

type sink struct {
	faults    *faults
	rec       *recorder
	streamSeq atomic.Int64
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "produce" {
		if err := runProduce(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "sink produce:", err)
			os.Exit(1)
		}
		return
	}
	if err := runServe(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sink:", err)
		os.Exit(1)
	}
}

func runServe(args []string) error {
	fs := flag.NewFlagSet("sink", flag.ContinueOnError)
	host := fs.String("host", "127.0.0.1", "address to listen on")
	grpcPort := fs.Int("grpc-port", 0, "gRPC port (0: any free port)")
	httpPort := fs.Int("http-port", 0, "OTLP/HTTP port (0: any free port)")
	controlPort := fs.Int("control-port", 0, "plain-HTTP control port (0: any free port)")
	out := fs.String("out", "", "JSON-lines output file, appended to (default: stdout)")
	seed := fs.Int64("seed", 1, "seed for random_unavailable")
	firstStream := fs.Int64("first-stream", 1, "number given to the first Arrow stream (restarts continue the count)")
	maxRecvMiB := fs.Int("max-recv-mib", 64, "largest gRPC message accepted, MiB")
	tlsCert := fs.String("tls-cert", "", "server certificate (PEM) for the gRPC and HTTP ports")
	tlsKey := fs.String("tls-key", "", "server key (PEM)")
	clientCA := fs.String("client-ca", "", "CA bundle (PEM); when set, client certificates are required and verified")
	var st settings
	fs.StringVar(&st.Mode, "mode", "ok", "ok|unavailable|invalid_argument|unimplemented")
	fs.Float64Var(&st.RandomUnavailable, "random-unavailable", 0, "probability that a batch is answered UNAVAILABLE")
	fs.StringVar(&st.RejectBatchContaining, "reject-batch-containing", "", "answer INVALID_ARGUMENT to batches whose JSON contains this")
	fs.IntVar(&st.DropStreamAfter, "drop-stream-after", 0, "end each Arrow stream with UNAVAILABLE at its Nth BAR (0: never)")
	fs.IntVar(&st.AckDelayMS, "ack-delay-ms", 0, "delay before each Arrow ack")
	fs.BoolVar(&st.OTLPOnly, "otlp-only", false, "do not register the Arrow services (true UNIMPLEMENTED)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := st.validate(); err != nil {
		return err
	}

	var w io.Writer = os.Stdout
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		w = f
	}
	s := &sink{faults: newFaults(st, *seed), rec: &recorder{w: w}}
	s.streamSeq.Store(*firstStream - 1)

	tlsConf, err := serverTLS(*tlsCert, *tlsKey, *clientCA)
	if err != nil {
		return err
	}

	listen := func(port int) (net.Listener, error) {
		return net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(port)))
	}
	grpcLis, err := listen(*grpcPort)
	if err != nil {
		return fmt.Errorf("grpc listener: %w", err)
	}
	httpLis, err := listen(*httpPort)
	if err != nil {
		return fmt.Errorf("http listener: %w", err)
	}
	controlLis, err := listen(*controlPort)
	if err != nil {
		return fmt.Errorf("control listener: %w", err)
	}

	opts := []grpc.ServerOption{grpc.MaxRecvMsgSize(*maxRecvMiB << 20)}
	if tlsConf != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsConf)))
	}
	gs := grpc.NewServer(opts...)
	if !st.OTLPOnly {
		arrowpb.RegisterArrowMetricsServiceServer(gs, &arrowMetricsServer{s: s})
		arrowpb.RegisterArrowLogsServiceServer(gs, &arrowLogsServer{s: s})
	}
	pmetricotlp.RegisterGRPCServer(gs, &otlpMetricsServer{s: s})
	plogotlp.RegisterGRPCServer(gs, &otlpLogsServer{s: s})

	mux := http.NewServeMux()
	mux.HandleFunc("/v1/metrics", s.otlpHTTP("metrics"))
	mux.HandleFunc("/v1/logs", s.otlpHTTP("logs"))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, TLSConfig: tlsConf}

	cmux := http.NewServeMux()
	cmux.HandleFunc("/control", s.control)
	cs := &http.Server{Handler: cmux, ReadHeaderTimeout: 10 * time.Second}

	errc := make(chan error, 3)
	go func() { errc <- gs.Serve(grpcLis) }()
	go func() {
		if tlsConf != nil {
			errc <- hs.ServeTLS(httpLis, "", "")
		} else {
			errc <- hs.Serve(httpLis)
		}
	}()
	go func() { errc <- cs.Serve(controlLis) }()

	stdout := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(stdout, "READY grpc=%s http=%s control=%s\n", grpcLis.Addr(), httpLis.Addr(), controlLis.Addr())
	if err := stdout.Flush(); err != nil {
		return err
	}

	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM)
	select {
	case sig := <-sigc:
		fmt.Fprintf(os.Stderr, "sink: %v, stopping\n", sig)
	case err := <-errc:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = cs.Shutdown(ctx)
	_ = hs.Shutdown(ctx)
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		gs.Stop()
	}
	s.rec.seal()
	return nil
}

// serverTLS builds the TLS config for the gRPC and HTTP ports, or nil.
func serverTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	if certFile == "" && keyFile == "" {
		if caFile != "" {
			return nil, errors.New("-client-ca needs -tls-cert and -tls-key")
		}
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("server key pair: %w", err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificates in %s", caFile)
		}
		conf.ClientCAs = pool
		conf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return conf, nil
}

// control serves GET/POST /control: POST applies a partial JSON object of
// settings; both answer with the settings now in force.
func (s *sink) control(w http.ResponseWriter, r *http.Request) {
	cur := s.faults.get()
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err == nil {
			cur, err = s.faults.update(body)
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": err.Error(), "settings": cur})
			return
		}
		fmt.Fprintf(os.Stderr, "sink: control %s\n", body)
	default:
		http.Error(w, "GET or POST", http.StatusMethodNotAllowed)
		return
	}
	writeJSON(w, http.StatusOK, cur)
}
