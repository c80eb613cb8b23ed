package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/bench"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/pluginhost"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e"
)

// benchPluginStart measures, for every locked plugin, what a stage pays
// to start it: pluginhost.Host.Open (the lock entry's file checks, the
// SecureConfig sha256, process start, go-plugin handshake, mTLS (our
// P-256 client certificate, go-plugin's P-521 server one) and
// GetInfo checked against the lock). Beside it, alternately in the same
// rounds, the bare pluginapi.Launch + GetInfo (go-plugin's floor for a
// pinned plugin) and one in-process sha256 of the binary (what each hash
// of it costs). The plugins are taken in turn each round.
func (s *suite) benchPluginStart(ctx context.Context) error {
	dir := s.bed.PluginDir
	lock, err := pluginhost.ReadLock(dir)
	if err != nil {
		return err
	}
	host, err := pluginhost.New(pluginhost.Options{Dir: dir})
	if err != nil {
		return err
	}
	defer host.Close()
	type plug struct {
		name, path string
		entry      pluginhost.Entry
		sum        []byte
		size       int64
		open       []float64 // Host.Open
		launch     []float64 // pluginapi.Launch + GetInfo
		hash       []float64 // sha256 of the file
		close      []float64
	}
	var plugs []*plug
	for _, e := range lock.Plugins {
		if !strings.HasPrefix(e.File, e2e.PluginPrefix) {
			continue
		}
		p := &plug{name: e.Name, path: filepath.Join(dir, e.File), entry: e}
		fi, err := os.Stat(p.path)
		if err != nil {
			return fmt.Errorf("plugin %s: %w", e.Name, err)
		}
		p.size = fi.Size()
		plugs = append(plugs, p)
	}
	if len(plugs) == 0 {
		return fmt.Errorf("no locked plugins in %s", dir)
	}
	hashOnce := func(p *plug) error {
		t0 := time.Now()
		f, err := os.Open(p.path)
		if err != nil {
			return fmt.Errorf("hash plugin %s: %w", p.name, err)
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("hash plugin %s: %w", p.name, err)
		}
		p.hash = append(p.hash, ms(time.Since(t0)))
		p.sum = h.Sum(nil)
		return nil
	}
	openOnce := func(p *plug) error {
		t0 := time.Now()
		pl, err := host.Open(ctx, p.entry)
		if err != nil {
			return fmt.Errorf("open plugin %s: %w", p.name, err)
		}
		d := time.Since(t0)
		t1 := time.Now()
		pl.Close()
		p.open = append(p.open, ms(d))
		p.close = append(p.close, ms(time.Since(t1)))
		return nil
	}
	launchOnce := func(p *plug) error {
		t0 := time.Now()
		pl, err := pluginapi.Launch(ctx, pluginapi.LaunchOptions{Path: p.path, SHA256: p.sum, Env: host.Env()})
		if err != nil {
			return err
		}
		info, err := pl.Info()
		if err == nil {
			_, err = info.GetInfo(ctx)
		}
		d := time.Since(t0)
		pl.Close()
		if err != nil {
			return fmt.Errorf("GetInfo of plugin %s: %w", p.name, err)
		}
		p.launch = append(p.launch, ms(d))
		return nil
	}
	round := func() error {
		for _, p := range plugs {
			for _, f := range []func(*plug) error{hashOnce, openOnce, launchOnce} {
				if err := f(p); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := round(); err != nil { // warm-up: page cache
		return err
	}
	for _, p := range plugs {
		p.open, p.launch, p.hash, p.close = nil, nil, nil, nil
	}
	for range s.opts.pluginN {
		if err := round(); err != nil {
			return err
		}
	}
	var rows [][]string
	worst, worstHash := 0.0, 0.0
	for _, p := range plugs {
		st, _ := bench.Summarize(p.open)
		la, _ := bench.Median(p.launch)
		hs, _ := bench.Median(p.hash)
		cl, _ := bench.Median(p.close)
		s.report.Set("plugin_start_ms_"+p.name, st.Median)
		s.report.Set("plugin_launch_ms_"+p.name, la)
		worst = max(worst, st.Median)
		worstHash = max(worstHash, hs)
		rows = append(rows, []string{p.name, bench.F(float64(p.size) / (1 << 20)), bench.F(st.Median), bench.F(st.P95),
			bench.F(la), bench.F(hs), bench.F(cl), fmt.Sprint(st.N)})
	}
	s.report.Set("plugin_start_ms", worst)
	s.report.Set("plugin_hash_ms", worstHash)
	s.report.Add("Plugin start (5)", "What a stage pays to start one locked plugin: `pluginhost.Host.Open` (stat of the locked file, "+
		"go-plugin's SecureConfig sha256 of the binary right before exec, fork/exec, go-plugin handshake, mTLS certificate "+
		"generation and gRPC dial, `GetInfo` checked against plugins.lock). Alongside, in the same rounds: the bare "+
		"`pluginapi.Launch` + `GetInfo` (go-plugin's floor for a pinned plugin) and one in-process sha256 of the binary (the "+
		"cost of each full hash of it). The plugins are taken in turn each round. `plugin_start_ms` is the slowest plugin's "+
		"Open median.\n\n"+
		bench.Table([]string{"plugin", "binary MiB", "Open median ms", "Open p95 ms", "Launch+GetInfo median ms", "sha256 median ms", "close median ms", "n"}, rows))
	return nil
}
