fn main() { println!("native-tools {}", env!("CARGO_PKG_VERSION")); }
