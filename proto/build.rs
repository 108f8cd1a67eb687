//! Compiles `proto/logship/v1/*.proto` with protox (pure Rust, no system protoc).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(
        ["logship/v1/ingest.proto", "logship/v1/enroll.proto"],
        ["proto"],
    )?;
    tonic_prost_build::configure()
        .bytes(".logship.v1")
        .compile_fds(fds)?;
    Ok(())
}
