package main

import (
	"encoding/json"
	"log"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// userMsg is a broadcast as it travels in memberlist's user messages (and push-pull).
type userMsg struct {
	ID      string          `json:"id"`
	Origin  string          `json:"origin"`
	Payload json.RawMessage `json:"payload"`
}

type received struct {
	userMsg
	AtMs float64
}

type event map[string]interface{}

// rumor is one broadcast in memberlist's TransmitLimitedQueue.
type rumor struct{ msg []byte }

func (r *rumor) Invalidates(memberlist.Broadcast) bool { return false }
func (r *rumor) Message() []byte                       { return r.msg }
func (r *rumor) Finished()                             {}

// node is the glue: memberlist's Delegate and EventDelegate, and what the control API
// reads. Status and incarnation always come from memberlist's own table (view.go).
type node struct {
	id        string
	list      *memberlist.Memberlist
	transport *routedTransport
	conf      *memberlist.Config
	queue     *memberlist.TransmitLimitedQueue

	mu       sync.Mutex
	ready    bool
	leaving  bool
	got      map[string]bool
	received []received
	events   []event
	// per member, the StateChange of the last status reported as an event, so the
	// watcher and the delegate callbacks never report one change twice or out of order
	reported map[string]time.Time
	status   map[string]string
}

func newNode(id string) *node {
	return &node{id: id, got: map[string]bool{}, reported: map[string]time.Time{},
		status: map[string]string{}}
}

func (n *node) attach(list *memberlist.Memberlist, t *routedTransport, conf *memberlist.Config) {
	n.list, n.transport, n.conf = list, t, conf
	n.queue = &memberlist.TransmitLimitedQueue{
		NumNodes:       list.NumMembers,
		RetransmitMult: conf.RetransmitMult,
	}
}

func msNow() float64 { return float64(time.Now().UnixNano()) / 1e6 }

func ms(t time.Time) float64 { return float64(t.UnixNano()) / 1e6 }

// ---- broadcast ------------------------------------------------------------------------

// deliver records a broadcast the first time it arrives and queues it to be gossiped on
// (memberlist's queue sends each rumor only RetransmitMult*log(n) times, so every
// receiver passes it on, as Serf does with its user events). False when already known.
func (n *node) deliver(m userMsg) bool {
	n.mu.Lock()
	if n.got[m.ID] {
		n.mu.Unlock()
		return false
	}
	n.got[m.ID] = true
	at := msNow()
	n.received = append(n.received, received{m, at})
	n.addEvent(event{"at_ms": at, "kind": "broadcast", "id": m.ID})
	n.mu.Unlock()
	if raw, err := json.Marshal(m); err == nil && n.queue != nil {
		n.queue.QueueBroadcast(&rumor{raw})
	}
	return true
}

// addEvent appends with the next seq; n.mu is held.
func (n *node) addEvent(e event) {
	e["seq"] = len(n.events) + 1
	n.events = append(n.events, e)
}

func (n *node) NodeMeta(limit int) []byte { return nil }

func (n *node) NotifyMsg(b []byte) {
	var m userMsg
	if err := json.Unmarshal(b, &m); err != nil || m.ID == "" {
		log.Printf("dropping a user message that is not a broadcast: %v", err)
		return
	}
	n.deliver(m)
}

func (n *node) GetBroadcasts(overhead, limit int) [][]byte {
	if n.queue == nil {
		return nil
	}
	return n.queue.GetBroadcasts(overhead, limit)
}

// LocalState gives every broadcast this node holds to memberlist's push-pull, so one
// that missed a member while rumors ran (a partition) reaches it at the next sync.
func (n *node) LocalState(join bool) []byte {
	n.mu.Lock()
	all := make([]userMsg, 0, len(n.received))
	for _, r := range n.received {
		all = append(all, r.userMsg)
	}
	n.mu.Unlock()
	raw, _ := json.Marshal(all)
	return raw
}

func (n *node) MergeRemoteState(buf []byte, join bool) {
	var all []userMsg
	if err := json.Unmarshal(buf, &all); err != nil {
		log.Printf("push-pull state unreadable: %v", err)
		return
	}
	for _, m := range all {
		n.deliver(m)
	}
}

// ---- member events --------------------------------------------------------------------

// noteStatus reports a member's status as an event when it differs from the last one
// reported, unless the reading is older (memberlist's StateChange) than that one. The
// event is stamped when this node records it: a watcher reading may come up to one
// poll after memberlist's change, and a stamp must never precede what the API showed.
// n.mu is held.
func (n *node) noteStatus(v memberView) {
	status := statusName(v.State)
	last, known := n.reported[v.Name]
	if known && (n.status[v.Name] == status || v.Changed.Before(last)) {
		return
	}
	n.reported[v.Name] = v.Changed
	n.status[v.Name] = status
	n.addEvent(event{"at_ms": msNow(), "kind": "member", "member": v.Name,
		"status": status, "incarnation": v.Incarnation})
}

func (n *node) fromDelegate(node *memberlist.Node) {
	v := stateOf(node) // memberlist holds its table lock while it calls us
	if n.transport != nil {
		n.transport.learn(v.Address, v.Name)
	}
	n.mu.Lock()
	n.noteStatus(v)
	n.mu.Unlock()
}

func (n *node) NotifyJoin(node *memberlist.Node)   { n.fromDelegate(node) }
func (n *node) NotifyLeave(node *memberlist.Node)  { n.fromDelegate(node) }
func (n *node) NotifyUpdate(node *memberlist.Node) { n.fromDelegate(node) }

// sync reports every status change memberlist's table holds that no event has reported
// yet, and returns the table as read. The members and events handlers call it before
// they answer, so nothing the API shows precedes its event's stamp; watch calls it so
// the feed keeps up between reads.
func (n *node) sync() []memberView {
	table := view(n.list)
	n.mu.Lock()
	for _, v := range table {
		n.noteStatus(v)
	}
	n.mu.Unlock()
	return table
}

// watch reports the changes memberlist has no callback for (alive -> suspect and a
// suspect refuting back to alive) within 10 ms of memberlist's change.
func (n *node) watch() {
	for {
		time.Sleep(10 * time.Millisecond)
		n.sync()
	}
}

// ---- join -----------------------------------------------------------------------------

func (n *node) joinAtStart(seeds []string) {
	if len(seeds) == 0 {
		n.setReady()
		return
	}
	start := time.Now()
	for {
		if _, err := n.list.Join(seeds); err == nil {
			n.setReady()
			return
		} else {
			log.Printf("join through %v: %v", seeds, err)
		}
		if time.Since(start) > joinGrace {
			n.setReady()
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (n *node) setReady() {
	n.mu.Lock()
	n.ready = true
	n.mu.Unlock()
}

func (n *node) logf(format string, args ...interface{}) { log.Printf(format, args...) }
