package bench

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
)

// RaiseOpenFiles raises the process's open-files soft limit to its hard limit
// and returns the new soft limit.
func RaiseOpenFiles() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("bench: get open-files limit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("bench: raise open-files limit to %d: %w", lim.Max, err)
		}
	}
	return lim.Cur, nil
}

// checkOpenFiles fails when conns connections cannot fit under the open-files
// limit, with some room for the process's other files.
func checkOpenFiles(conns int) error {
	limit, err := RaiseOpenFiles()
	if err != nil {
		return err
	}
	if need := uint64(conns) + 64; need > limit {
		return fmt.Errorf("%w: %d connections need about %d open files, the hard limit is %d "+
			"(raise it with ulimit -Hn as root, or ask for fewer)", ErrLimit, conns, need, limit)
	}
	return nil
}

// ephemeralPorts returns how many local ports one source address can use, from
// /proc/sys/net/ipv4/ip_local_port_range (28,232 when it cannot be read).
func ephemeralPorts() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 28232
	}
	var lo, hi int
	if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &lo, &hi); err != nil || hi <= lo {
		return 28232
	}
	return hi - lo + 1
}

// sourceAddrs returns the local addresses to spread conns connections to a
// loopback server over: none (the kernel picks) when one address has ports
// enough, else 127.0.0.1, 127.0.0.2, ... using at most 80% of each one's
// ephemeral ports (TIME_WAIT from earlier runs holds some).
func sourceAddrs(server string, conns int) ([]*net.TCPAddr, error) {
	perAddr := ephemeralPorts() * 8 / 10
	if conns <= perAddr {
		return nil, nil
	}
	host, _, err := net.SplitHostPort(server)
	if err != nil {
		return nil, fmt.Errorf("bench: server address %q: %w", server, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() || ip.To4() == nil {
		return nil, fmt.Errorf("%w: %d connections need more than one source address's %d ports, "+
			"and spreading over several only works towards an IPv4 loopback server, not %s", ErrLimit, conns, perAddr, host)
	}
	n := (conns + perAddr - 1) / perAddr
	if n > 250 {
		return nil, fmt.Errorf("%w: %d connections would need %d loopback source addresses", ErrLimit, conns, n)
	}
	addrs := make([]*net.TCPAddr, n)
	for i := range addrs {
		addrs[i] = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(i+1))}
	}
	return addrs, nil
}

// classify names the limit behind a dial error, or returns "".
func classify(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "open-files limit"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "out of source ports"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (server down or backlog full)"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset (server at its limit?)"
	case strings.Contains(err.Error(), "503"):
		return "server refused the upgrade (503: at its connection limit or draining)"
	case strings.Contains(err.Error(), "timeout"), strings.Contains(err.Error(), "deadline"):
		return "timeout"
	}
	return "other"
}
