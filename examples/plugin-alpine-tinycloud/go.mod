module example.com/gitlab-runner-kubevirt-plugin-alpine-tinycloud

go 1.26.0

require (
	github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt v0.0.0-00010101000000-000000000000
	github.com/hashicorp/go-hclog v1.6.3
	golang.org/x/crypto v0.59.0
	sigs.k8s.io/yaml v1.6.0
)

require (
	github.com/fatih/color v1.13.0 // indirect
	github.com/golang/protobuf v1.5.4 // indirect
	github.com/hashicorp/go-plugin v1.8.0 // indirect
	github.com/hashicorp/yamux v0.1.2 // indirect
	github.com/mattn/go-colorable v0.1.12 // indirect
	github.com/mattn/go-isatty v0.0.17 // indirect
	github.com/oklog/run v1.1.0 // indirect
	go.yaml.in/yaml/v2 v2.4.4 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/text v0.44.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
	google.golang.org/grpc v1.85.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

// Build against this checkout of the plugin contract. A plugin in its own
// repository drops this line and requires a released version instead.
replace github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt => ../..
