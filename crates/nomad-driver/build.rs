//! Compiles the hand-written .proto files with protox (pure Rust, so no protoc is needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/plugin/grpc_plugin.proto",
        "proto/plugins/base/proto/base.proto",
        "proto/plugins/drivers/proto/driver.proto",
        "proto/plugins/shared/hclspec/hcl_spec.proto",
        "proto/plugins/shared/structs/proto/attribute.proto",
    ];
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    Ok(())
}
