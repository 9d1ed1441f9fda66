// Command gossipcert-skeleton is the smallest server of the gossipcert control API v1
// (specs/control-api.yaml) for an implementation that claims only `membership`: the
// harness's calls are answered here, and every TODO is where your gossip library plugs
// in. Standard library only. See README.md.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
)

// capabilities must equal the manifest's `capabilities` list.
var capabilities = []string{"membership"}

// member is one row of GET /v1/members.
type member struct {
	ID          string `json:"id"`
	Address     string `json:"address"` // host:port of its gossip address
	Status      string `json:"status"`  // alive, suspect, dead or left
	Incarnation uint64 `json:"incarnation"`
}

type node struct {
	id, gossip string
	mu         sync.Mutex
	ready      bool
}

// members is this node's view of the cluster, itself included.
func (n *node) members() []member {
	// TODO: return your library's membership table, with the status it holds for each
	// member (never a status it does not hold).
	return []member{{ID: n.id, Address: n.gossip, Status: "alive", Incarnation: 0}}
}

// join joins the cluster through seeds (host:port gossip addresses).
func (n *node) join(seeds []string) error {
	// TODO: call your library's join; return an error when no seed answered.
	return nil
}

func reply(w http.ResponseWriter, status int, body interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func fail(w http.ResponseWriter, status int, code, message string) {
	reply(w, status, map[string]string{"error": code, "message": message})
}

func (n *node) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/node", func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		ready := n.ready
		n.mu.Unlock()
		reply(w, 200, map[string]interface{}{"id": n.id, "impl": "go-skeleton",
			"version": "0.0.1", "capabilities": capabilities, "ready": ready})
	})
	mux.HandleFunc("/v1/members", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, map[string]interface{}{"members": n.members()})
	})
	mux.HandleFunc("/v1/join", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Seeds []string `json:"seeds"`
		}
		if r.Method != http.MethodPost {
			fail(w, 405, "method_not_allowed", r.Method+" "+r.URL.Path)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Seeds) == 0 {
			fail(w, 400, "bad_request", "seeds must be a non-empty list of host:port")
			return
		}
		if err := n.join(body.Seeds); err != nil {
			fail(w, 503, "join_failed", err.Error())
			return
		}
		reply(w, 200, map[string]interface{}{})
	})
	// Every other capability is not claimed: 501 with an error body. Claim one by
	// adding it to capabilities (and the manifest) and serving its paths above.
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		fail(w, 501, "not_implemented", "not claimed by this implementation: "+r.URL.Path)
	})
	return mux
}

type seedList []string

func (s *seedList) String() string     { return strings.Join(*s, ",") }
func (s *seedList) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	id := flag.String("id", "", "node id")
	gossip := flag.String("gossip", "", "gossip address HOST:PORT")
	control := flag.String("control", "", "control API address HOST:PORT")
	var seeds seedList
	flag.Var(&seeds, "seed", "a seed's gossip address HOST:PORT (repeatable)")
	flag.Parse()
	if *id == "" || *gossip == "" || *control == "" {
		fmt.Fprintln(os.Stderr, "gossipcert-skeleton: --id, --gossip and --control are required")
		os.Exit(2)
	}
	n := &node{id: *id, gossip: *gossip}
	// TODO: start your library's node on *gossip here.
	ln, err := net.Listen("tcp", *control)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gossipcert-skeleton: --control %s: %v\n", *control, err)
		os.Exit(2)
	}
	go func() {
		if len(seeds) > 0 {
			if err := n.join(seeds); err != nil {
				fmt.Fprintf(os.Stderr, "join: %v\n", err)
			}
		}
		n.mu.Lock()
		n.ready = true // the harness waits for ready: true before it calls anything else
		n.mu.Unlock()
	}()
	if err := http.Serve(ln, n.routes()); err != nil {
		fmt.Fprintf(os.Stderr, "gossipcert-skeleton: %v\n", err)
		os.Exit(1)
	}
}
