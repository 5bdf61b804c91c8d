package coord

// CachedWindows is how many windows w keeps in memory (tests only).
func (w *Windows) CachedWindows() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.cache)
}
