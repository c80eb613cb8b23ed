// Package plugintest lets a plugin author test an OS or transport plugin
// implementation without building a binary: it serves the implementation
// in-process over real gRPC (go-plugin's GRPCServer on a Unix socket, the
// same adapters a plugin binary serves) and hands back the client side, the
// same [pluginapi.OSPlugin] or [pluginapi.TransportPlugin] the core gets
// from [pluginapi.Launch].
//
//	func TestRender(t *testing.T) {
//		osp := plugintest.OS(t, myplugin.New())
//		resp, err := osp.Render(t.Context(), &pluginv1.RenderRequest{...})
//		...
//	}
//
// Everything is torn down with t.Cleanup. For the binary itself (launch,
// handshake, checksums, process lifetime) use pluginapi/conformance.
package plugintest
