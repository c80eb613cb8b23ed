package runner

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// Stage names: the executor's stages and run_exec's sub-stages.
const (
	StageConfig  = "config"
	StagePrepare = "prepare"
	StageCleanup = "cleanup"

	StagePrepareScript            = "prepare_script"
	StageGetSources               = "get_sources"
	StageRestoreCache             = "restore_cache"
	StageDownloadArtifacts        = "download_artifacts"
	StageStepScript               = "step_script"
	StageAfterScript              = "after_script"
	StageArchiveCache             = "archive_cache"
	StageArchiveCacheOnFailure    = "archive_cache_on_failure"
	StageUploadArtifactsOnSuccess = "upload_artifacts_on_success"
	StageUploadArtifactsOnFailure = "upload_artifacts_on_failure"
	StageCleanupFileVariables     = "cleanup_file_variables"
)

// sectionTitles are the section headers gitlab-runner prints in the job
// log before each sub-stage.
var sectionTitles = map[string]string{
	StagePrepareScript:            "Preparing environment",
	StageGetSources:               "Getting source from Git repository",
	StageRestoreCache:             "Restoring cache",
	StageDownloadArtifacts:        "Downloading artifacts",
	StageStepScript:               `Executing "step_script" stage of the job script`,
	StageAfterScript:              "Running after_script",
	StageArchiveCache:             "Saving cache for successful job",
	StageArchiveCacheOnFailure:    "Saving cache for failed job",
	StageUploadArtifactsOnSuccess: "Uploading artifacts for successful job",
	StageUploadArtifactsOnFailure: "Uploading artifacts for failed job",
	StageCleanupFileVariables:     "Cleaning up project directory and file based variables",
}

// SectionTitle returns the header gitlab-runner prints for a stage (the
// stage name itself for stages without one).
func SectionTitle(stage string) string {
	if t, ok := sectionTitles[stage]; ok {
		return t
	}
	return stage
}

// scripter writes the bash scripts of one job.
type scripter struct {
	job        Job
	cfg        Config
	vars       []Variable
	projectDir string
}

// script returns the complete bash script of a run sub-stage, in the shape
// gitlab-runner generates: the body runs under `: | eval $'...'` so its
// commands read no stdin and a failing command ends the script with its
// code.
func (s scripter) script(stage string) string {
	var b strings.Builder
	s.exports(&b)
	dir := shellQuote(s.projectDir)
	switch stage {
	case StagePrepareScript:
		fmt.Fprintf(&b, "echo \"Running on $(hostname) via %s...\"\n", strings.ReplaceAll(s.cfg.RunnerDescription, `"`, ""))
	case StageGetSources:
		fmt.Fprintf(&b, "mkdir -p %s\ncd %s\n", dir, dir)
		b.WriteString("echo \"Fetching changes...\"\n")
		names := make([]string, 0, len(s.job.Files))
		for p := range s.job.Files {
			names = append(names, p)
		}
		sort.Strings(names)
		for _, p := range names {
			if d := path.Dir(p); d != "." {
				fmt.Fprintf(&b, "mkdir -p %s\n", shellQuote(d))
			}
			fmt.Fprintf(&b, "printf '%%s' %s > %s\n", shellQuote(s.job.Files[p]), shellQuote(p))
		}
		fmt.Fprintf(&b, "echo %s\n", shellQuote(fmt.Sprintf("Checking out %s as detached HEAD (ref is %s)...", s.job.SHA[:8], s.job.Ref)))
		b.WriteString("echo \"Skipping Git submodules setup\"\n")
	case StageRestoreCache:
		fmt.Fprintf(&b, "cd %s\n", dir)
		b.WriteString("echo \"Checking cache for default-protected...\"\n")
		b.WriteString("echo \"No URL provided, cache will not be downloaded from shared cache server. Instead a local version of cache will be extracted.\"\n")
		b.WriteString("mkdir -p .cache\n")
	case StageDownloadArtifacts:
		fmt.Fprintf(&b, "cd %s\n", dir)
		b.WriteString("echo \"Downloading artifacts for dependencies (none)...\"\n")
	case StageStepScript:
		fmt.Fprintf(&b, "cd %s\n", dir)
		for _, cmd := range append(append([]string{}, s.job.BeforeScript...), s.job.Script...) {
			userCommand(&b, cmd)
		}
	case StageAfterScript:
		fmt.Fprintf(&b, "cd %s\n", dir)
		for _, cmd := range s.job.AfterScript {
			userCommand(&b, cmd)
		}
	case StageArchiveCache, StageArchiveCacheOnFailure:
		fmt.Fprintf(&b, "cd %s\n", dir)
		b.WriteString("echo \"Creating cache default-protected...\"\n")
		b.WriteString("mkdir -p .cache\necho \".cache/: found $(find .cache | wc -l) matching artifact files and directories\"\n")
		b.WriteString("echo \"Created cache\"\n")
	case StageUploadArtifactsOnSuccess, StageUploadArtifactsOnFailure:
		fmt.Fprintf(&b, "cd %s\n", dir)
		b.WriteString("echo \"Uploading artifacts...\"\n")
		b.WriteString("mkdir -p out\necho \"out/: found $(find out | wc -l) matching artifact files and directories\"\n")
	case StageCleanupFileVariables:
		fmt.Fprintf(&b, "rm -rf -- %s\n", shellQuote(s.projectDir+".tmp"))
	}
	return "#!/usr/bin/env bash\n\nset -eo pipefail\nset +o noclobber\n: | eval " + ansiCQuote(b.String()) + "\nexit 0\n"
}

// exports writes an export of every job variable; file variables become a
// file in <project dir>.tmp and the variable holds its path, as in
// gitlab-runner.
func (s scripter) exports(b *strings.Builder) {
	tmp := s.projectDir + ".tmp"
	madeTmp := false
	for _, v := range s.vars {
		if !v.File {
			fmt.Fprintf(b, "export %s=%s\n", v.Key, shellQuote(v.Value))
			continue
		}
		if !madeTmp {
			fmt.Fprintf(b, "mkdir -p %s\n", shellQuote(tmp))
			madeTmp = true
		}
		file := tmp + "/" + v.Key
		fmt.Fprintf(b, "printf '%%s' %s > %s\n", shellQuote(v.Value), shellQuote(file))
		fmt.Fprintf(b, "export %s=%s\n", v.Key, shellQuote(file))
	}
}

// userCommand echoes a user's command as "$ command", then runs it.
func userCommand(b *strings.Builder, cmd string) {
	fmt.Fprintf(b, "printf '%%s\\n' %s\n", shellQuote("$ "+cmd))
	b.WriteString(cmd)
	b.WriteString("\n")
}

// shellQuote quotes s for bash as one word: single quotes, with each
// single quote written as '\”.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ansiCQuote quotes s as a bash ANSI-C string ($'...'): backslash, single
// quote and control bytes are escaped; other bytes (UTF-8 included) are
// kept.
func ansiCQuote(s string) string {
	var b strings.Builder
	b.WriteString("$'")
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\'':
			b.WriteString(`\'`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\r':
			b.WriteString(`\r`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteString("'")
	return b.String()
}
