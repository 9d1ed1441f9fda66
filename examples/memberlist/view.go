package main

import (
	"fmt"
	"reflect"
	"sync"
	"time"
	"unsafe"

	"github.com/hashicorp/memberlist"
)

// nodeStateMirror has the layout of memberlist 0.2.2's unexported nodeState. memberlist
// keeps each member's status and incarnation there only: Members() drops dead and left
// nodes, and the exported Node.State it returns is never set (nodeState.State shadows
// it). checkLayout proves the layout before anything reads through it.
type nodeStateMirror struct {
	memberlist.Node
	Incarnation uint32
	State       memberlist.NodeStateType
	StateChange time.Time
}

// memberView is one member as memberlist's own table has it.
type memberView struct {
	Name        string
	Address     string
	State       memberlist.NodeStateType
	Incarnation uint32
	Changed     time.Time
}

// checkLayout fails unless the linked memberlist has the fields view reads, with the
// mirror's names, types and offsets: a different memberlist is refused, never misread.
func checkLayout() error {
	t := reflect.TypeOf(memberlist.Memberlist{})
	lock, ok := t.FieldByName("nodeLock")
	if !ok || lock.Type != reflect.TypeOf(sync.RWMutex{}) {
		return fmt.Errorf("memberlist.Memberlist has no nodeLock sync.RWMutex")
	}
	nodes, ok := t.FieldByName("nodes")
	if !ok || nodes.Type.Kind() != reflect.Slice || nodes.Type.Elem().Kind() != reflect.Ptr {
		return fmt.Errorf("memberlist.Memberlist has no nodes []*nodeState")
	}
	theirs := nodes.Type.Elem().Elem()
	ours := reflect.TypeOf(nodeStateMirror{})
	if theirs.Size() != ours.Size() || theirs.NumField() != ours.NumField() {
		return fmt.Errorf("memberlist's nodeState is not the 0.2.2 layout")
	}
	for i := 0; i < ours.NumField(); i++ {
		a, b := theirs.Field(i), ours.Field(i)
		if a.Name != b.Name || a.Type != b.Type || a.Offset != b.Offset {
			return fmt.Errorf("memberlist's nodeState field %d is %s %s, expected %s %s",
				i, a.Name, a.Type, b.Name, b.Type)
		}
	}
	return nil
}

// view copies memberlist's member table (every node it knows, dead and left included,
// until memberlist reaps them) under memberlist's own lock.
func view(list *memberlist.Memberlist) []memberView {
	v := reflect.ValueOf(list).Elem()
	lock := (*sync.RWMutex)(unsafe.Pointer(v.FieldByName("nodeLock").UnsafeAddr()))
	nodes := (*[]*nodeStateMirror)(unsafe.Pointer(v.FieldByName("nodes").UnsafeAddr()))
	lock.RLock()
	defer lock.RUnlock()
	out := make([]memberView, 0, len(*nodes))
	for _, n := range *nodes {
		out = append(out, fromMirror(n))
	}
	return out
}

// stateOf reads the table entry a delegate callback was handed: memberlist passes
// &state.Node, the first field of the nodeState, and holds its lock while it calls.
func stateOf(node *memberlist.Node) memberView {
	return fromMirror((*nodeStateMirror)(unsafe.Pointer(node)))
}

func fromMirror(n *nodeStateMirror) memberView {
	return memberView{
		Name:        n.Name,
		Address:     n.Node.Address(),
		State:       n.State,
		Incarnation: n.Incarnation,
		Changed:     n.StateChange,
	}
}

func statusName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateDead:
		return "dead"
	case memberlist.StateLeft:
		return "left"
	}
	return "dead"
}
