package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/logging"
)

// pollReader reads many connections from a couple of epoll goroutines rather
// than one goroutine each: the load generator then spends its CPU on reading,
// not on scheduling ten thousand goroutines, and its publisher is not queued
// behind them.
type pollReader struct {
	eng     *nbio.Engine
	handle  func(i int, msg []byte)
	closing atomic.Bool
	dropped atomic.Int64
	first   atomic.Pointer[error]
	// handoff orders, for the race detector, what add writes before handing a
	// connection to the poller with what the poller then reads (the hand-off
	// itself goes through epoll, which the detector cannot see).
	handoff  atomic.Int64
	stopOnce sync.Once
	mu       sync.Mutex
	readers  []*frameReader // every connection added, for wireBytes; guarded by mu
}

// frameReader is one connection's incremental frame parser.
type frameReader struct {
	i       int
	nc      *nbio.Conn
	ws      *wsConn // for writing pongs (masked frames)
	rest    []byte  // an incomplete frame carried over to the next read
	msg     []byte  // the payload of a fragmented message so far
	msgZ    bool    // that message is compressed
	zbuf    []byte  // the last compressed message, inflated
	deflate bool    // permessage-deflate was negotiated
	wire    int64   // bytes read from the socket; written by its poller only
}

func newPollReader(pollers int, handle func(i int, msg []byte)) (*pollReader, error) {
	logging.SetLevel(logging.LevelError)
	p := &pollReader{handle: handle}
	p.eng = nbio.NewEngine(nbio.Config{Name: "bench", NPoller: pollers, ReadBufferSize: 64 << 10})
	p.eng.OnData(func(c *nbio.Conn, data []byte) {
		p.handoff.Load()
		fr, ok := c.Session().(*frameReader)
		if !ok {
			return
		}
		fr.wire += int64(len(data))
		if err := fr.feed(data, p.handle); err != nil {
			p.fail(err)
			_ = c.Close()
		}
	})
	p.eng.OnClose(func(c *nbio.Conn, err error) {
		if !p.closing.Load() {
			if err == nil {
				err = errors.New("closed by the server")
			}
			p.fail(err)
		}
	})
	if err := p.eng.Start(); err != nil {
		return nil, fmt.Errorf("bench: start poller: %w", err)
	}
	return p, nil
}

func (p *pollReader) fail(err error) {
	p.dropped.Add(1)
	p.first.CompareAndSwap(nil, &err)
}

// add moves connection i to the poller. Bytes c has already buffered are parsed
// first; c must not be used for reading after.
func (p *pollReader) add(i int, c *wsConn) error {
	buffered, _ := c.r.Peek(c.r.Buffered())
	buffered = append([]byte(nil), buffered...)
	// What came with the handshake is read first, and a ping in it (a server
	// may ping at once) answered on c's socket as it is: an nbio.Conn cannot
	// write before it is on the engine.
	fr := &frameReader{i: i, deflate: c.deflate, ws: c}
	if len(buffered) > 0 {
		if err := fr.feed(buffered, p.handle); err != nil {
			_ = c.nc.Close()
			return err
		}
	}
	nbc, err := nbio.NBConn(c.nc) // dups the descriptor and closes c.nc
	if err != nil {
		return fmt.Errorf("bench: to poller: %w", err)
	}
	fr.nc, fr.ws = nbc, &wsConn{nc: nbc}
	p.mu.Lock()
	p.readers = append(p.readers, fr)
	p.mu.Unlock()
	c.nc = nbc
	nbc.SetSession(fr)
	p.handoff.Add(1)
	if _, err := p.eng.AddConn(nbc); err != nil {
		return fmt.Errorf("bench: to poller: %w", err)
	}
	return nil
}

// stop closes every connection and the poller.
func (p *pollReader) stop() {
	p.stopOnce.Do(func() {
		p.closing.Store(true)
		p.eng.Stop()
	})
}

// wireBytes returns the bytes read from every socket, frames included. Call
// it after stop.
func (p *pollReader) wireBytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, fr := range p.readers {
		n += fr.wire
	}
	return n
}

// lost returns an error when connections dropped while reading.
func (p *pollReader) lost() error {
	if n := p.dropped.Load(); n > 0 {
		return fmt.Errorf("%w: %d connections dropped during the run; first error: %v", ErrLimit, n, *p.first.Load())
	}
	return nil
}

// feed parses data, handing each complete text or binary message to handle.
func (fr *frameReader) feed(data []byte, handle func(int, []byte)) error {
	carried := len(fr.rest) > 0
	if carried {
		fr.rest = append(fr.rest, data...)
		data = fr.rest
	}
	for {
		n, op, fin, hdr, ok := parseHeader(data)
		if !ok || len(data) < hdr+n {
			break
		}
		compressed := data[0]&0x40 != 0
		payload := data[hdr : hdr+n]
		data = data[hdr+n:]
		var err error
		switch {
		case op == opPing:
			err = fr.ws.writeMessage(opPong, payload)
		case op == opClose:
			return closeError(payload)
		case op >= opClose: // pong, reserved control
		case fin && len(fr.msg) == 0 && op != 0:
			err = fr.deliver(payload, compressed, handle)
		default: // a fragment
			if op != 0 {
				fr.msgZ = compressed
			}
			fr.msg = append(fr.msg, payload...)
			if fin {
				err = fr.deliver(fr.msg, fr.msgZ, handle)
				fr.msg = fr.msg[:0]
			}
		}
		if err != nil {
			return err
		}
	}
	// Keep what is left for the next read: data is a tail of fr.rest when
	// carried (copy moves it down in place), else of the caller's buffer.
	if carried {
		fr.rest = fr.rest[:copy(fr.rest, data)]
	} else {
		fr.rest = append(fr.rest[:0], data...)
	}
	if len(fr.rest) > 16<<20 {
		return errors.New("bench: frame over 16 MiB")
	}
	return nil
}

// deliver hands msg to handle, inflated first when compressed.
func (fr *frameReader) deliver(msg []byte, compressed bool, handle func(int, []byte)) error {
	if compressed {
		if !fr.deflate {
			return errors.New("bench: compressed frame without permessage-deflate")
		}
		var err error
		if fr.zbuf, err = inflate(fr.zbuf[:0], msg); err != nil {
			return err
		}
		msg = fr.zbuf
	}
	handle(fr.i, msg)
	return nil
}

// parseHeader reads a server frame's header: payload length, opcode, FIN, and
// header size; ok is false when data does not hold the whole header yet.
func parseHeader(data []byte) (n int, op byte, fin bool, hdr int, ok bool) {
	if len(data) < 2 {
		return 0, 0, false, 0, false
	}
	fin, op = data[0]&0x80 != 0, data[0]&0x0F
	switch l := data[1] & 0x7F; l {
	case 126:
		if len(data) < 4 {
			return 0, 0, false, 0, false
		}
		return int(binary.BigEndian.Uint16(data[2:4])), op, fin, 4, true
	case 127:
		if len(data) < 10 {
			return 0, 0, false, 0, false
		}
		return int(binary.BigEndian.Uint64(data[2:10]) & (1<<40 - 1)), op, fin, 10, true
	default:
		return int(l), op, fin, 2, true
	}
}
