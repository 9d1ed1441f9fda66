package main

import (
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// capabilities is what this node serves; the manifest claims exactly these.
var capabilities = []string{"membership", "failure-detection", "broadcast", "events",
	"leave", "encryption"}

// unclaimed are the contract's other capabilities' paths: each answers 501.
var unclaimed = []string{"/v1/kv", "/v1/crdt/", "/v1/metrics"}

func reply(w http.ResponseWriter, status int, body interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func fail(w http.ResponseWriter, status int, code, message string) {
	reply(w, status, map[string]string{"error": code, "message": message})
}

func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	fail(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" "+r.URL.Path)
	return false
}

func serve(ln net.Listener, n *node) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/node", func(w http.ResponseWriter, r *http.Request) {
		if !allow(w, r, http.MethodGet) {
			return
		}
		n.mu.Lock()
		ready := n.ready
		n.mu.Unlock()
		reply(w, 200, map[string]interface{}{"id": n.id, "impl": "hashicorp-memberlist",
			"version": implVersion, "capabilities": capabilities, "ready": ready})
	})
	mux.HandleFunc("/v1/members", func(w http.ResponseWriter, r *http.Request) {
		if !allow(w, r, http.MethodGet) {
			return
		}
		members := []map[string]interface{}{}
		for _, v := range n.sync() {
			members = append(members, map[string]interface{}{"id": v.Name, "address": v.Address,
				"status": statusName(v.State), "incarnation": v.Incarnation})
		}
		reply(w, 200, map[string]interface{}{"members": members})
	})
	mux.HandleFunc("/v1/join", func(w http.ResponseWriter, r *http.Request) {
		if !allow(w, r, http.MethodPost) {
			return
		}
		var body struct {
			Seeds []string `json:"seeds"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Seeds) == 0 {
			fail(w, 400, "bad_request", "seeds must be a non-empty list of host:port")
			return
		}
		for _, s := range body.Seeds {
			if _, _, err := net.SplitHostPort(s); err != nil {
				fail(w, 400, "bad_request", "seed "+strconv.Quote(s)+" is not host:port")
				return
			}
		}
		if _, err := n.list.Join(body.Seeds); err != nil {
			fail(w, 503, "join_failed", err.Error())
			return
		}
		n.setReady()
		reply(w, 200, map[string]interface{}{})
	})
	mux.HandleFunc("/v1/leave", func(w http.ResponseWriter, r *http.Request) {
		if !allow(w, r, http.MethodPost) {
			return
		}
		n.mu.Lock()
		already := n.leaving
		n.leaving = true
		n.mu.Unlock()
		if !already {
			// memberlist's graceful leave: a dead message about itself from itself,
			// which members record as left; then the node stops gossiping.
			go func() {
				if err := n.list.Leave(leaveTimeout); err != nil {
					n.logf("leave: %v", err)
				}
				if err := n.list.Shutdown(); err != nil {
					n.logf("shutdown: %v", err)
				}
			}()
		}
		reply(w, 202, map[string]interface{}{})
	})
	mux.HandleFunc("/v1/broadcast", func(w http.ResponseWriter, r *http.Request) {
		if !allow(w, r, http.MethodPost) {
			return
		}
		var body struct {
			ID      *string         `json:"id"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.ID == nil ||
			*body.ID == "" || body.Payload == nil {
			fail(w, 400, "bad_request", "a broadcast is {id: non-empty string, payload: any}")
			return
		}
		n.deliver(userMsg{ID: *body.ID, Origin: n.id, Payload: body.Payload})
		reply(w, 202, map[string]interface{}{})
	})
	mux.HandleFunc("/v1/broadcasts", func(w http.ResponseWriter, r *http.Request) {
		if !allow(w, r, http.MethodGet) {
			return
		}
		n.mu.Lock()
		out := make([]map[string]interface{}, 0, len(n.received))
		for _, m := range n.received {
			out = append(out, map[string]interface{}{"id": m.ID, "origin": m.Origin,
				"payload": m.Payload, "at_ms": m.AtMs})
		}
		n.mu.Unlock()
		reply(w, 200, map[string]interface{}{"received": out})
	})
	mux.HandleFunc("/v1/events", func(w http.ResponseWriter, r *http.Request) {
		if !allow(w, r, http.MethodGet) {
			return
		}
		n.sync()
		after := 0
		if text := r.URL.Query().Get("after"); text != "" {
			v, err := strconv.Atoi(text)
			if err != nil || v < 0 {
				fail(w, 400, "bad_request", "after must be a non-negative integer")
				return
			}
			after = v
		}
		n.mu.Lock()
		var out []event
		if after < len(n.events) {
			out = append(out, n.events[after:]...)
		}
		next := len(n.events)
		n.mu.Unlock()
		if out == nil {
			out = []event{}
		}
		reply(w, 200, map[string]interface{}{"events": out, "next": next})
	})
	mux.HandleFunc("/v1/keyring", func(w http.ResponseWriter, r *http.Request) {
		if !allow(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		ring := n.conf.Keyring
		if r.Method == http.MethodPost {
			var body struct {
				Op  string `json:"op"`
				Key string `json:"key"`
			}
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
				fail(w, 400, "bad_request", "a keyring change is {op, key}")
				return
			}
			key, err := base64.StdEncoding.DecodeString(body.Key)
			if err != nil {
				fail(w, 400, "bad_request", "key is not base64")
				return
			}
			switch body.Op {
			case "install":
				err = ring.AddKey(key)
			case "use":
				err = ring.UseKey(key)
			case "remove":
				err = ring.RemoveKey(key)
			default:
				fail(w, 400, "bad_request", "op must be install, use or remove")
				return
			}
			if err != nil {
				fail(w, 409, "keyring", err.Error())
				return
			}
		}
		keys := []string{}
		for _, k := range ring.GetKeys() {
			keys = append(keys, base64.StdEncoding.EncodeToString(k))
		}
		var primary interface{}
		if p := ring.GetPrimaryKey(); p != nil {
			primary = base64.StdEncoding.EncodeToString(p)
		}
		reply(w, 200, map[string]interface{}{"enabled": len(keys) > 0, "primary": primary,
			"keys": keys})
	})
	for _, path := range unclaimed {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			fail(w, 501, "not_implemented", "not claimed by this implementation: "+r.URL.Path)
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/kv/") {
			fail(w, 501, "not_implemented", "not claimed by this implementation: "+r.URL.Path)
			return
		}
		fail(w, 404, "not_found", r.URL.Path)
	})
	return http.Serve(ln, mux)
}
