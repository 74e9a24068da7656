package idempotency

// Len is the number of keys held; only tests ask.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.keys.Len()
}
