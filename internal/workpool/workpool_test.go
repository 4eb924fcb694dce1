package workpool

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPoolRunsEveryTask(t *testing.T) {
	tests := []struct {
		name  string
		max   int
		tasks int
	}{
		{"within max", 8, 100},
		{"past max", 2, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := New(tt.max, time.Minute, nil)
			var wg sync.WaitGroup
			var mu sync.Mutex
			ran := map[int]bool{}
			release := make(chan struct{})
			for i := range tt.tasks {
				wg.Add(1)
				p.Go(func() {
					defer wg.Done()
					<-release // every task busy at once: the pool must not make Go wait
					mu.Lock()
					ran[i] = true
					mu.Unlock()
				})
			}
			if w := p.Workers(); w != tt.max {
				t.Errorf("%d workers with %d tasks busy, want %d", w, tt.tasks, tt.max)
			}
			close(release)
			wg.Wait()
			if len(ran) != tt.tasks {
				t.Fatalf("%d tasks ran, want %d", len(ran), tt.tasks)
			}
		})
	}
}

func TestPoolReusesIdleWorkers(t *testing.T) {
	p := New(8, time.Minute, nil)
	done := make(chan struct{})
	for range 50 {
		p.Go(func() { done <- struct{}{} })
		<-done
	}
	// One task at a time: the worker that ran the first one (and maybe one
	// more, started while the first was returning) ran them all.
	if w := p.Workers(); w < 1 || w > 2 {
		t.Fatalf("%d workers for tasks run one at a time, want 1 or 2", w)
	}
}

func TestPoolWorkersExitWhenIdle(t *testing.T) {
	p := New(4, 10*time.Millisecond, nil)
	done := make(chan struct{})
	p.Go(func() { close(done) })
	<-done
	deadline := time.Now().Add(5 * time.Second)
	for p.Workers() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers still running after 5s idle", p.Workers())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPoolSurvivesPanic(t *testing.T) {
	p := New(1, time.Minute, nil)
	p.Go(func() { panic("boom") })
	done := make(chan struct{})
	p.Go(func() { close(done) })
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a task after a panicking one did not run")
	}
}

func TestPoolClose(t *testing.T) {
	p := New(4, time.Minute, nil)
	done := make(chan struct{})
	p.Go(func() { done <- struct{}{} })
	<-done
	p.Close()
	if w := p.Workers(); w != 0 { // Close waited for them
		t.Fatalf("%d workers still running after Close", w)
	}
	p.Go(func() { close(done) }) // still runs, on a goroutine of its own
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a task given after Close did not run")
	}
	if w := p.Workers(); w != 0 {
		t.Fatalf("%d workers after Close", w)
	}
}

// TestPoolCloseWaitsForTasks: Close returns only once the tasks given before
// it have returned, on a worker or on a goroutine of their own.
func TestPoolCloseWaitsForTasks(t *testing.T) {
	p := New(1, time.Minute, nil)
	release := make(chan struct{})
	var finished atomic.Int64
	for range 3 { // one worker, two goroutines of their own
		p.Go(func() { <-release; finished.Add(1) })
	}
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while its tasks ran")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after its tasks did")
	}
	if n := finished.Load(); n != 3 {
		t.Fatalf("Close returned after %d of 3 tasks", n)
	}
}
