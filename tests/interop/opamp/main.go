// A reference OpAMP server for edgecollect's interop tests, on the server package of opamp-go.
//
// It records every AgentToServer message as one JSON line (protojson, proto field names) with the
// receive time, and serves one remote config to every agent whose last reported remote config hash
// differs from it. Control (loopback only, same listener):
//
//	POST /control/config   body = the TOML to serve under "edgecollect.toml" (empty body: serve none)
//	GET  /control/health   200 once listening
//
// With -descriptors FILE it only writes the FileDescriptorSet of opamp.proto and anyvalue.proto
// (used to generate the Python modules in edgecollect/opamp/proto/) and exits.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/open-telemetry/opamp-go/server"
	"github.com/open-telemetry/opamp-go/server/types"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

const configKey = "edgecollect.toml"

type recorder struct {
	mu       sync.Mutex
	out      *os.File
	config   []byte // served TOML; nil = none
	hash     []byte
	reported map[string][]byte // last_remote_config_hash each agent reported, by instance uid
	seen     map[string]bool
}

func (r *recorder) record(msg *protobufs.AgentToServer) {
	body, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(msg)
	if err != nil {
		log.Printf("marshal: %v", err)
		return
	}
	line, _ := json.Marshal(map[string]any{"t": time.Now().UnixNano(), "msg": json.RawMessage(body)})
	r.mu.Lock()
	defer r.mu.Unlock()
	// One write per line: a reader never sees half a line.
	if _, err := r.out.Write(append(line, '\n')); err != nil {
		log.Printf("write: %v", err)
	}
}

func (r *recorder) onMessage(_ context.Context, _ types.Connection, msg *protobufs.AgentToServer) *protobufs.ServerToAgent {
	r.record(msg)
	uid := string(msg.InstanceUid)
	r.mu.Lock()
	defer r.mu.Unlock()
	if st := msg.GetRemoteConfigStatus(); st != nil {
		r.reported[uid] = st.LastRemoteConfigHash
	}
	resp := &protobufs.ServerToAgent{InstanceUid: msg.InstanceUid}
	if !r.seen[uid] && msg.AgentDescription == nil {
		// An agent we have not heard in full (this server restarted): ask for everything again.
		resp.Flags = uint64(protobufs.ServerToAgentFlags_ServerToAgentFlags_ReportFullState)
	}
	if msg.AgentDescription != nil {
		r.seen[uid] = true
	}
	if r.config != nil && !bytes.Equal(r.reported[uid], r.hash) {
		resp.RemoteConfig = &protobufs.AgentRemoteConfig{
			Config: &protobufs.AgentConfigMap{ConfigMap: map[string]*protobufs.AgentConfigFile{
				configKey: {Body: r.config, ContentType: "application/toml"},
			}},
			ConfigHash: r.hash,
		}
	}
	return resp
}

func (r *recorder) setConfig(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(body) == 0 {
		r.config, r.hash = nil, nil
	} else {
		sum := sha256.Sum256(body)
		r.config, r.hash = body, sum[:]
	}
	w.WriteHeader(http.StatusNoContent)
}

func writeDescriptors(path string) error {
	set := &descriptorpb.FileDescriptorSet{}
	for _, fd := range []protoreflect.FileDescriptor{protobufs.File_anyvalue_proto, protobufs.File_opamp_proto} {
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	raw, err := proto.Marshal(set)
	if err != nil {
		return err
	}
	return os.WriteFile(path, raw, 0o644)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:4320", "address for /v1/opamp and /control")
	outPath := flag.String("out", "opamp.jsonl", "JSON-lines file of every agent message")
	descriptors := flag.String("descriptors", "", "write the proto FileDescriptorSet here and exit")
	tlsCert := flag.String("tls-cert", "", "server certificate (PEM): serve HTTPS")
	tlsKey := flag.String("tls-key", "", "server key (PEM)")
	clientCA := flag.String("client-ca", "", "CA bundle (PEM): require and verify client certificates")
	flag.Parse()
	if *descriptors != "" {
		if err := writeDescriptors(*descriptors); err != nil {
			log.Fatal(err)
		}
		return
	}
	out, err := os.OpenFile(*outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	rec := &recorder{out: out, reported: map[string][]byte{}, seen: map[string]bool{}}
	srv := server.New(nil)
	handler, connContext, err := srv.Attach(server.Settings{Callbacks: types.Callbacks{
		OnConnecting: func(*http.Request) types.ConnectionResponse {
			return types.ConnectionResponse{Accept: true, ConnectionCallbacks: types.ConnectionCallbacks{
				OnMessage: rec.onMessage,
			}}
		},
	}})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/opamp", handler)
	mux.HandleFunc("POST /control/config", rec.setConfig)
	mux.HandleFunc("GET /control/health", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	httpSrv := &http.Server{Handler: mux, ConnContext: connContext, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = httpSrv.Shutdown(ctx)
	}()
	log.Printf("listening on %s", ln.Addr())
	if *tlsCert != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if *clientCA != "" {
			pem, err := os.ReadFile(*clientCA)
			if err != nil {
				log.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
		}
		httpSrv.TLSConfig = cfg
		err = httpSrv.ServeTLS(ln, *tlsCert, *tlsKey)
	} else {
		err = httpSrv.Serve(ln)
	}
	if err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
	_ = out.Close()
}
