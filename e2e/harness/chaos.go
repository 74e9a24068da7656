package harness

import (
	"context"
	"fmt"
	"syscall"
)

// The faults the chaos tests inject: a crash (SIGKILL, as an OOM kill or a node failure
// would), a graceful stop (SIGTERM, as a rollout would), and a broker restarted on the
// same port and data directory.

// Crash SIGKILLs the app and starts it again on the same port with the same environment,
// as a container restarted after a crash. It returns the dead process, whose output stays
// readable (and is among Harness.Processes).
func (a *App) Crash(ctx context.Context) (*Process, error) {
	dead := a.Process
	dead.Kill()
	return dead, a.launch(ctx)
}

// Relaunch starts the app again after its process ended (Terminate, Kill), on the same
// port with the same environment.
func (a *App) Relaunch(ctx context.Context) error {
	if exited, _ := a.Exited(); !exited {
		return fmt.Errorf("%s: relaunch while pid %d still runs", a.name, a.Pid())
	}
	return a.launch(ctx)
}

// Crash SIGKILLs daprd and starts it again on the same ports and resources.
func (s *Sidecar) Crash(ctx context.Context) (*Process, error) {
	dead := s.Process
	dead.Kill()
	return dead, s.launch(ctx)
}

// Relaunch starts the broker again on the same port and data directory after it was
// stopped (Stop). Only brokers started with a relaunch (StartRedisWith) have one.
func (b *Broker) Relaunch(ctx context.Context) error {
	if b.relaunch == nil {
		return fmt.Errorf("broker %s cannot be relaunched", b.Name)
	}
	if exited, _ := b.Exited(); !exited {
		return fmt.Errorf("broker %s: relaunch while pid %d still runs", b.Name, b.Pid())
	}
	p, err := b.relaunch(ctx)
	if p != nil {
		b.Process = p
	}
	return err
}

// Terminate sends SIGTERM to the process group and returns at once; Done tells when the
// process has exited, Exited how.
func (p *Process) Terminate() {
	if ok, _ := p.Exited(); ok {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
}

// Done is closed once the process has exited and its output has been read.
func (p *Process) Done() <-chan struct{} { return p.done }

// kafkaListOffsets is the ListOffsets API; its non-flexible versions 1..5 are served by
// Kafka 4 (KIP-896 removed only version 0).
const kafkaListOffsets = 2

// KafkaEndOffsets returns how many messages topic holds: the sum of the latest offsets
// over its partitions. With KafkaCommitted it tells whether a consumer group is drained.
func KafkaEndOffsets(ctx context.Context, addr, topic string, partitions int) (int64, error) {
	c, err := dialKafka(ctx, addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	v, err := c.pick(kafkaListOffsets, 1, 5)
	if err != nil {
		return 0, err
	}
	var req kafkaWriter
	req.int32(-1) // replica_id: a consumer
	if v >= 2 {
		_ = req.WriteByte(0) // isolation_level: read uncommitted
	}
	req.int32(1)
	req.string(topic)
	n := int32(min(partitions, 1<<16)) //nolint:gosec // bounded just now
	req.int32(n)
	for i := range n {
		req.int32(i)
		if v >= 4 {
			req.int32(-1) // current_leader_epoch: unknown
		}
		req.int32(-1) // timestamp -1 (latest), an int64: high word…
		req.int32(-1) // …and low word
	}
	resp, err := c.call(kafkaListOffsets, v, req.Bytes())
	if err != nil {
		return 0, err
	}
	r := kafkaReader{b: resp}
	if v >= 2 {
		r.int32() // throttle_time_ms
	}
	var total int64
	for range r.int32() {
		r.string() // topic
		for range r.int32() {
			p := r.int32()
			code := r.int16()
			r.take(8) // timestamp
			hi, lo := r.int32(), r.int32()
			if v >= 4 {
				r.int32() // leader_epoch
			}
			if code != 0 {
				return 0, fmt.Errorf("ListOffsets %s/%d: error code %d", topic, p, code)
			}
			total += int64(hi)<<32 | int64(uint32(lo)) //nolint:gosec // reassembling a big-endian int64
		}
	}
	return total, r.err
}
