fn main() { println!("ael {}", env!("CARGO_PKG_VERSION")); }
