package stages

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/inputerr"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/jobenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/policy"
)

// This file turns the errors users meet most into messages that say what
// to do. They end up in the job log, read by people who wrote a
// .gitlab-ci.yml, not by the runner's administrator.

// explainPolicy rewrites policy refusals of job variables so they say how
// to fix the job. Other errors pass through unchanged.
func explainPolicy(err error, p policy.Policy) error {
	if err == nil {
		return nil
	}
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, 0, len(list))
	for _, e := range list {
		out = append(out, explainInput(e, p))
	}
	return errors.Join(out...)
}

// explainInput explains one refused input.
func explainInput(err error, p policy.Policy) error {
	var ie *inputerr.Error
	if !errors.As(err, &ie) {
		return err
	}
	switch {
	case ie.Name == jobenv.VarJobImage && strings.Contains(ie.Rule, "is not allowed"):
		return fmt.Errorf("VM image %q is not allowed by %s=%s: use an image matching one of these patterns or ask the runner admin to add one (%w)",
			ie.Value, policy.FlagAllowedImages, strings.Join(p.AllowedImages, ","), err)
	case strings.HasPrefix(ie.Name, "VM_") && strings.Contains(ie.Rule, "exceeds the runner's"):
		return fmt.Errorf("%w: change %s in the job's variables (.gitlab-ci.yml) or ask the runner admin to raise the limit", err, ie.Name)
	case strings.HasPrefix(ie.Name, "VM_") && strings.Contains(ie.Rule, "this runner allows"):
		return fmt.Errorf("%w: change %s in the job's variables (.gitlab-ci.yml) or ask the runner admin to allow it", err, ie.Name)
	}
	return err
}

// explainWait adds hints to a failed wait for the VMI to run.
func explainWait(err error, namespace, vmi string, vm policy.VM, nodeSelector map[string]string) error {
	var fe *kube.FailedError
	if !errors.As(err, &fe) || !strings.HasPrefix(fe.Reason, "unschedulable") {
		return err
	}
	sel := make([]string, 0, len(nodeSelector))
	for k, v := range nodeSelector {
		sel = append(sel, k+"="+v)
	}
	where := "kubernetes.io/arch=" + vm.Architecture
	if len(sel) > 0 {
		where += " and " + strings.Join(sel, ",")
	}
	return fmt.Errorf(`%w
hint: no node can run this VM. Check that
  - a node has the free resources the VM requests (%s; lower VM_CPU_REQUEST / VM_MEMORY_REQUEST or ask the admin for capacity),
  - a node carries the labels %s (the VM's architecture and the runner's --node-selector),
  - the runner's --toleration flags cover the taints of those nodes;
  kubectl describe vmi %s -n %s shows the scheduler's full message`,
		err, requests(vm), where, vmi, namespace)
}

// requests renders the VM's resource requests for hints.
func requests(vm policy.VM) string {
	var parts []string
	for _, r := range []string{"cpu", "memory", "ephemeral-storage"} {
		if q, ok := vm.Requests[r]; ok {
			parts = append(parts, r+" "+q.String())
		}
	}
	if len(parts) == 0 {
		return "no explicit requests"
	}
	return strings.Join(parts, ", ")
}

// unreachableHint explains a VM the transport never reached.
func unreachableHint(namespace, vmi string, port int, transport string) string {
	return fmt.Sprintf(`hint: the VM runs but %s never got in on port %d. Check that
  - the image starts an SSH server on port %d at boot (openssh-server installed and enabled),
  - the image's cloud-init (Linux) or Cloudbase-Init (Windows) reads the NoCloud/ConfigDrive datasource, so the login user and keys exist,
  - the boot finished: virtctl console %s -n %s shows the VM's console`, transport, port, port, vmi, namespace)
}

// projectPath is the project's path (group/project) from the job URL
// (https://gitlab.example.com/group/project/-/jobs/42), else "project
// <id>", else "unknown project".
func projectPath(j jobenv.Job) string {
	if u, err := url.Parse(j.URL); err == nil {
		if p, _, ok := strings.Cut(strings.Trim(u.Path, "/"), "/-/"); ok && p != "" {
			return p
		}
	}
	if j.ProjectID != "" {
		return "project " + j.ProjectID
	}
	return "unknown project"
}

// orUnknown shows an empty status field as "unknown".
func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
