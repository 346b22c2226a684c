//! Which tools are offered, and the names servers go by: pure, no server started.

use super::*;

#[test]
fn tool_names_must_not_collide() {
    let _servers = servers();
    let first = start(&everything());
    let second = start(&everything());
    let lists = [
        (
            first.name(),
            first.tools().unwrap_or_else(|e| panic!("{e}")),
        ),
        (
            second.name(),
            second.tools().unwrap_or_else(|e| panic!("{e}")),
        ),
    ];
    assert_eq!(
        usage_message(select(&lists, &[], None)),
        "two tools are named 'echo': one from MCP server 'server-everything' (--mcp #1), one from MCP server 'server-everything' (--mcp #2)"
    );
    assert_eq!(
        usage_message(select(&lists[..1], &["get_weather", "get-sum"], None)),
        "two tools are named 'get-sum': one from --tools, one from MCP server 'server-everything'"
    );
    // --mcp-tools can leave the colliding one out.
    let offered = select(&lists[..1], &["get-sum"], Some(&["echo".to_owned()]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(offered.len(), 1);
    assert_eq!(offered[0].definition["name"], "echo");
}

#[test]
fn select_offers_every_tool_in_server_order() {
    let tool = |name: &str| json!({"name": name, "input_schema": {"type": "object"}});
    let servers = [
        ("a", vec![tool("one"), tool("two")]),
        ("b", vec![]),
        ("c", vec![tool("three")]),
    ];
    let offered = select(&servers, &["other"], None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        offered,
        [
            Offered {
                server: 0,
                definition: tool("one")
            },
            Offered {
                server: 0,
                definition: tool("two")
            },
            Offered {
                server: 2,
                definition: tool("three")
            },
        ]
    );
    assert_eq!(
        usage_message(select(&[("a", vec![tool("x"), tool("x")])], &[], None)),
        "two tools are named 'x': one from MCP server 'a', one from MCP server 'a'"
    );
}

#[test]
fn server_names_come_from_the_package_or_the_script() {
    let name =
        |command: &str| server_name(&shell_words::split(command).unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(
        name("npx -y @modelcontextprotocol/server-filesystem ./docs"),
        "server-filesystem"
    );
    assert_eq!(name("npx -y @scope/pkg@1.2.3"), "pkg");
    assert_eq!(
        name("node /x/node_modules/@m/server-everything/dist/index.js"),
        "server-everything"
    );
    assert_eq!(name("uvx mcp-server-git==0.6"), "mcp-server-git");
    assert_eq!(name("npx some-server@2 --flag"), "some-server");
    assert_eq!(name("python3 -u tools/my_server.py"), "my_server.py");
    assert_eq!(name("/usr/local/bin/mcp-thing --port 3"), "mcp-thing");
    assert_eq!(name("docker run -i --rm mcp/fetch"), "docker");
}
