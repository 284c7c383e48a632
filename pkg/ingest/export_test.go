package ingest

// Queued is how many callers wait in the group (for the tests of Group).
func (g *Group) Queued() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue)
}
