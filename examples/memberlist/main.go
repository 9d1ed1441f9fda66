// Command gossipcert-memberlist is one HashiCorp memberlist node serving the gossipcert
// control API v1 (specs/control-api.yaml), so the harness can certify memberlist itself:
// membership, failure detection, broadcast, events, leave and encryption are memberlist's
// own; this program only translates. See README.md.
package main

import (
	"encoding/base64"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

const (
	implVersion = "0.2.2" // the memberlist this is built against (Debian's package)
	// joinGrace: ready without a seed's answer after this long (the seed may be down);
	// the join is retried meanwhile.
	joinGrace = 3 * time.Second
	// leaveTimeout bounds how long Leave waits for its dead-self message to go out.
	leaveTimeout = 5 * time.Second
)

// routeFlag collects repeated PEER=HOST:PORT flags.
type routeFlag map[string]string

func (r routeFlag) String() string { return fmt.Sprint(map[string]string(r)) }

func (r routeFlag) Set(v string) error {
	peer, addr, ok := strings.Cut(v, "=")
	if !ok || peer == "" {
		return fmt.Errorf("a route is PEER=HOST:PORT, not %q", v)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("route %q: %v", v, err)
	}
	r[peer] = addr
	return nil
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	id := flag.String("id", "", "node name (the harness's node id)")
	gossip := flag.String("gossip", "", "gossip address HOST:PORT (UDP and TCP)")
	control := flag.String("control", "", "control API address HOST:PORT")
	profile := flag.String("profile", "local", "memberlist config: local (DefaultLocalConfig) or lan (DefaultLANConfig)")
	key := flag.String("key", "", "base64 gossip encryption key (16, 24 or 32 bytes)")
	var seeds listFlag
	flag.Var(&seeds, "seed", "a seed's gossip address HOST:PORT (repeatable)")
	tcpRoutes, udpRoutes := routeFlag{}, routeFlag{}
	flag.Var(tcpRoutes, "route", "PEER=HOST:PORT: dial PEER's streams there (repeatable)")
	flag.Var(udpRoutes, "udp-route", "PEER=HOST:PORT: send PEER's datagrams there (repeatable)")
	flag.Parse()

	if err := run(*id, *gossip, *control, *profile, *key, seeds, tcpRoutes, udpRoutes); err != nil {
		fmt.Fprintf(os.Stderr, "gossipcert-memberlist: %v\n", err)
		os.Exit(2)
	}
}

func run(id, gossip, control, profile, key string, seeds []string, tcp, udp map[string]string) error {
	if id == "" || gossip == "" || control == "" {
		return fmt.Errorf("--id, --gossip and --control are required")
	}
	if err := checkLayout(); err != nil {
		return fmt.Errorf("unsupported memberlist (built for %s): %v", implVersion, err)
	}
	var conf *memberlist.Config
	switch profile {
	case "local":
		conf = memberlist.DefaultLocalConfig()
	case "lan":
		conf = memberlist.DefaultLANConfig()
	default:
		return fmt.Errorf("--profile must be local or lan, not %q", profile)
	}
	host, portText, err := net.SplitHostPort(gossip)
	if err != nil {
		return fmt.Errorf("--gossip %q: %v", gossip, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return fmt.Errorf("--gossip %q: bad port", gossip)
	}
	// An empty keyring keeps encryption off until a key is installed (POST /v1/keyring);
	// memberlist encrypts once the keyring holds a key.
	var keys [][]byte
	if key != "" {
		k, err := base64.StdEncoding.DecodeString(key)
		if err != nil {
			return fmt.Errorf("--key is not base64: %v", err)
		}
		keys = append(keys, k)
	}
	var primary []byte
	if len(keys) > 0 {
		primary = keys[0]
	}
	ring, err := memberlist.NewKeyring(keys, primary)
	if err != nil {
		return fmt.Errorf("--key: %v", err)
	}
	transport, err := newRoutedTransport(host, port, tcp, udp)
	if err != nil {
		return fmt.Errorf("gossip %s: %v", gossip, err)
	}

	n := newNode(id)
	conf.Name = id
	conf.BindAddr = host
	conf.BindPort = port
	conf.AdvertiseAddr = host
	conf.AdvertisePort = port
	conf.Transport = transport
	conf.Keyring = ring
	conf.Delegate = n
	conf.Events = n
	conf.LogOutput = os.Stderr

	list, err := memberlist.Create(conf)
	if err != nil {
		return fmt.Errorf("memberlist: %v", err)
	}
	n.attach(list, transport, conf)
	go n.watch()

	ln, err := net.Listen("tcp", control)
	if err != nil {
		return fmt.Errorf("--control %s: %v", control, err)
	}
	log.Printf("node %s: memberlist %s (%s config: probe %v/%v, suspicion x%d, gossip %v to %d, "+
		"retransmit x%d, push-pull %v), %d routes, %d UDP routes",
		id, implVersion, profile, conf.ProbeInterval, conf.ProbeTimeout, conf.SuspicionMult,
		conf.GossipInterval, conf.GossipNodes, conf.RetransmitMult, conf.PushPullInterval,
		len(tcp), len(udp))
	go n.joinAtStart(seeds)
	return serve(ln, n)
}
