package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/inputerr"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
)

// GC runs one garbage collection and writes the report to out as text
// (one line per object) or JSON (format "json").
func GC(ctx context.Context, clients *kube.Clients, opts kube.GCOptions, format string, out io.Writer) error {
	if format != "text" && format != "json" {
		return inputerr.New("--output", format, "must be text or json")
	}
	rep, err := clients.GC(ctx, opts)
	if rep != nil {
		if werr := writeGCReport(rep, format, out); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

func writeGCReport(rep *kube.GCReport, format string, out io.Writer) error {
	if format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	verb := "deleted"
	if rep.DryRun {
		verb = "would delete"
	}
	for _, it := range rep.Items {
		line := fmt.Sprintf("%s %s %s/%s: %s", verb, it.Kind, it.Namespace, it.Name, it.Reason)
		if it.Error != "" {
			line += " (failed: " + it.Error + ")"
		}
		if _, err := fmt.Fprintln(out, line); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(out, "scanned %d VMIs and %d Secrets; %d objects %s\n", rep.ScannedVMIs, rep.ScannedSecrets, len(rep.Items), verb)
	return err
}
