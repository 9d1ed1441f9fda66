package main

import (
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// routedTransport is memberlist's own NetTransport with a dial map in front of it: a
// datagram for a peer goes to that peer's UDP route and a stream is dialled to its TCP
// route, so the harness's link plane carries every message and can cut, delay or drop
// them. Everything else (listening, ingesting, shutdown) is NetTransport unchanged.
type routedTransport struct {
	*memberlist.NetTransport
	tcp map[string]string // peer name -> where to dial its streams
	udp map[string]string // peer name -> where to send its datagrams

	mu    sync.Mutex
	names map[string]string // advertised gossip address -> peer name
}

var _ memberlist.NodeAwareTransport = (*routedTransport)(nil)

func newRoutedTransport(host string, port int, tcp, udp map[string]string) (*routedTransport, error) {
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{host},
		BindPort:  port,
	})
	if err != nil {
		return nil, err
	}
	return &routedTransport{NetTransport: nt, tcp: tcp, udp: udp, names: map[string]string{}}, nil
}

// learn records which peer advertises addr, for the few sends memberlist addresses by
// host:port alone (a join through a seed names no node).
func (t *routedTransport) learn(addr, name string) {
	t.mu.Lock()
	t.names[addr] = name
	t.mu.Unlock()
}

func (t *routedTransport) name(a memberlist.Address) string {
	if a.Name != "" {
		return a.Name
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.names[a.Addr]
}

// route picks the dial address for a: the peer's route when the map has one, else the
// address memberlist gave (a seed not yet known by name, or no dial map at all).
func (t *routedTransport) route(routes map[string]string, a memberlist.Address) string {
	if dial, ok := routes[t.name(a)]; ok {
		return dial
	}
	return a.Addr
}

func (t *routedTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *routedTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.NetTransport.WriteTo(b, t.route(t.udp, a))
}

func (t *routedTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *routedTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.NetTransport.DialTimeout(t.route(t.tcp, a), timeout)
}
