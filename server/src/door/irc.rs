pub const SERVER: &str = "chat-server";
