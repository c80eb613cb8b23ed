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
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e"
)

// benchPluginStart measures pluginapi.Launch (process start, checksum,
// handshake, AutoMTLS) plus one GetInfo for every plugin binary, the
// plugins taken in turn round by round.
func (s *suite) benchPluginStart(ctx context.Context) error {
	paths, err := filepath.Glob(filepath.Join(s.bed.PluginDir, e2e.PluginPrefix+"*"))
	if err != nil || len(paths) == 0 {
		return fmt.Errorf("no plugin binaries in %s (err %v)", s.bed.PluginDir, err)
	}
	type plug struct {
		name, path string
		sum        []byte
		ms, close  []float64
	}
	var plugs []*plug
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("hash plugin: %w", err)
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("hash plugin %s: %w", p, err)
		}
		plugs = append(plugs, &plug{name: strings.TrimPrefix(filepath.Base(p), e2e.PluginPrefix), path: p, sum: h.Sum(nil)})
	}
	once := func(p *plug) error {
		t0 := time.Now()
		pl, err := pluginapi.Launch(ctx, pluginapi.LaunchOptions{Path: p.path, SHA256: p.sum, Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}})
		if err != nil {
			return err
		}
		info, err := pl.Info()
		if err == nil {
			_, err = info.GetInfo(ctx)
		}
		d := time.Since(t0)
		t1 := time.Now()
		pl.Close()
		if err != nil {
			return fmt.Errorf("GetInfo of plugin %s: %w", p.name, err)
		}
		p.ms = append(p.ms, ms(d))
		p.close = append(p.close, ms(time.Since(t1)))
		return nil
	}
	for _, p := range plugs { // warm-up: page cache
		if err := once(p); err != nil {
			return err
		}
		p.ms, p.close = nil, nil
	}
	for range s.opts.pluginN {
		for _, p := range plugs {
			if err := once(p); err != nil {
				return err
			}
		}
	}
	var rows [][]string
	worst := 0.0
	for _, p := range plugs {
		st, _ := bench.Summarize(p.ms)
		cl, _ := bench.Median(p.close)
		s.report.Set("plugin_start_ms_"+p.name, st.Median)
		worst = max(worst, st.Median)
		rows = append(rows, []string{p.name, bench.F(st.Median), bench.F(st.P95), bench.F(cl), fmt.Sprint(st.N)})
	}
	s.report.Set("plugin_start_ms", worst)
	s.report.Add("Plugin start (5)", "`pluginapi.Launch` (fork/exec, SecureConfig sha256 of the binary, go-plugin handshake, AutoMTLS "+
		"certificate generation and gRPC dial) plus one `GetInfo` call, per plugin, the plugins taken in turn each round. "+
		"`plugin_start_ms` is the slowest plugin's median.\n\n"+
		bench.Table([]string{"plugin", "median ms", "p95 ms", "close median ms", "n"}, rows))
	return nil
}
