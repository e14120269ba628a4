//! Compiles rkt's v1alpha API with protox (pure Rust, so no protoc is needed), for the
//! service and for the clients of the tests.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/v1alpha/api.proto"];
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
