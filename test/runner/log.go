package runner

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// Entry is one piece of the job log.
type Entry struct {
	// Time is when the harness received it.
	Time time.Time
	// Stage is the stage that wrote it (or the stage a runner line is
	// about; "" for job-level runner lines).
	Stage string
	// Runner marks gitlab-runner's own lines (section headers, retries,
	// the final status) as opposed to the executor's output.
	Runner bool
	// Data is the bytes, as written.
	Data []byte
}

// jobLog collects the job log and the runner log of one job.
type jobLog struct {
	hook func(Entry)

	mu      sync.Mutex
	entries []Entry
	runner  strings.Builder
}

func (l *jobLog) add(e Entry) {
	l.mu.Lock()
	l.entries = append(l.entries, e)
	l.mu.Unlock()
	if l.hook != nil {
		l.hook(e)
	}
}

// runnerLine adds one of gitlab-runner's own lines to the job log.
func (l *jobLog) runnerLine(stage, format string, args ...any) {
	l.add(Entry{Time: time.Now(), Stage: stage, Runner: true, Data: []byte(fmt.Sprintf(format, args...) + "\n")})
}

// logf adds a line to the runner log (gitlab-runner's own log, not the
// job's).
func (l *jobLog) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.runner, "%s %s\n", time.Now().Format(time.RFC3339Nano), fmt.Sprintf(format, args...))
}

// stageWriter records a stage's output as job log entries.
type stageWriter struct {
	log   *jobLog
	stage string
}

func (w *stageWriter) Write(p []byte) (int, error) {
	w.log.add(Entry{Time: time.Now(), Stage: w.stage, Data: append([]byte(nil), p...)})
	return len(p), nil
}

// runnerLogWriter sends a stage's output to the runner log (cleanup_exec's
// output goes there in gitlab-runner).
type runnerLogWriter struct {
	log    *jobLog
	prefix string
}

func (w *runnerLogWriter) Write(p []byte) (int, error) {
	w.log.mu.Lock()
	defer w.log.mu.Unlock()
	for _, line := range strings.SplitAfter(string(p), "\n") {
		if line == "" {
			continue
		}
		fmt.Fprintf(&w.log.runner, "%s %s%s", time.Now().Format(time.RFC3339Nano), w.prefix, line)
		if !strings.HasSuffix(line, "\n") {
			w.log.runner.WriteString("\n")
		}
	}
	return len(p), nil
}

func (l *jobLog) snapshot() ([]Entry, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Entry(nil), l.entries...), l.runner.String()
}
