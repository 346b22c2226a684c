
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'cs-msg' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'cs-msg'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'cs-msg' {
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Attach a file: text, image or PDF (`-` = stdin); repeatable')
            [CompletionResult]::new('--file', '--file', [CompletionResultType]::ParameterName, 'Attach a file: text, image or PDF (`-` = stdin); repeatable')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'System prompt')
            [CompletionResult]::new('--system', '--system', [CompletionResultType]::ParameterName, 'System prompt')
            [CompletionResult]::new('--system-file', '--system-file', [CompletionResultType]::ParameterName, 'Read the system prompt from a file')
            [CompletionResult]::new('--messages', '--messages', [CompletionResultType]::ParameterName, 'Prior turns: a JSON array of messages; this turn, if any, is appended')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Chat kept in a file: its turns are sent, the reply is saved')
            [CompletionResult]::new('--conversation', '--conversation', [CompletionResultType]::ParameterName, 'Chat kept in a file: its turns are sent, the reply is saved')
            [CompletionResult]::new('--request', '--request', [CompletionResultType]::ParameterName, 'Send a complete request body (`-` = stdin); flags given here override its fields')
            [CompletionResult]::new('-m', '-m', [CompletionResultType]::ParameterName, 'Model id, sent verbatim')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model id, sent verbatim')
            [CompletionResult]::new('--max-tokens', '--max-tokens', [CompletionResultType]::ParameterName, 'Maximum number of tokens to generate')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Sampling temperature, 0.0 to 1.0')
            [CompletionResult]::new('--temperature', '--temperature', [CompletionResultType]::ParameterName, 'Sampling temperature, 0.0 to 1.0')
            [CompletionResult]::new('--top-p', '--top-p', [CompletionResultType]::ParameterName, 'Nucleus sampling, 0.0 to 1.0')
            [CompletionResult]::new('--top-k', '--top-k', [CompletionResultType]::ParameterName, 'Sample only from the K most likely tokens')
            [CompletionResult]::new('--stop', '--stop', [CompletionResultType]::ParameterName, 'Stop when the model writes SEQ; repeatable')
            [CompletionResult]::new('--metadata-user-id', '--metadata-user-id', [CompletionResultType]::ParameterName, 'Opaque end-user id sent as metadata.user_id')
            [CompletionResult]::new('--beta', '--beta', [CompletionResultType]::ParameterName, 'Enable a beta feature (anthropic-beta header); repeatable')
            [CompletionResult]::new('--tools', '--tools', [CompletionResultType]::ParameterName, 'Tool definitions: a JSON file holding an array of tools')
            [CompletionResult]::new('--tool-choice', '--tool-choice', [CompletionResultType]::ParameterName, 'Which tool the model may use: auto, any, none, or a tool NAME')
            [CompletionResult]::new('--exec', '--exec', [CompletionResultType]::ParameterName, 'Run tool NAME (defined in --tools) with COMMAND when the model calls it; repeatable')
            [CompletionResult]::new('--tool-result', '--tool-result', [CompletionResultType]::ParameterName, 'Answer a tool call of the history''s last turn: ID=TEXT, ID=@FILE or ID=- (stdin); repeatable')
            [CompletionResult]::new('--tool-error', '--tool-error', [CompletionResultType]::ParameterName, 'Like --tool-result, but the call failed (is_error: true)')
            [CompletionResult]::new('--mcp', '--mcp', [CompletionResultType]::ParameterName, 'Start an MCP server (COMMAND, split like --exec) and offer its tools; repeatable')
            [CompletionResult]::new('--mcp-tools', '--mcp-tools', [CompletionResultType]::ParameterName, 'Offer only these tools of the --mcp servers (one list over all of them)')
            [CompletionResult]::new('--max-turns', '--max-turns', [CompletionResultType]::ParameterName, 'The most requests one tool loop sends (--exec, --mcp)')
            [CompletionResult]::new('--tool-timeout', '--tool-timeout', [CompletionResultType]::ParameterName, 'Seconds a tool command may run before its process group is killed')
            [CompletionResult]::new('--schema', '--schema', [CompletionResultType]::ParameterName, 'Print one JSON object matching this JSON Schema (file or inline)')
            [CompletionResult]::new('--thinking', '--thinking', [CompletionResultType]::ParameterName, 'Extended thinking: `adaptive`, or a token budget N (at least 1024)')
            [CompletionResult]::new('--effort', '--effort', [CompletionResultType]::ParameterName, 'How much effort the model spends (output_config.effort)')
            [CompletionResult]::new('--cache-ttl', '--cache-ttl', [CompletionResultType]::ParameterName, 'Cache lifetime: 5m or 1h; implies --cache')
            [CompletionResult]::new('--base-url', '--base-url', [CompletionResultType]::ParameterName, 'API base URL (without /v1)')
            [CompletionResult]::new('--fallback-model', '--fallback-model', [CompletionResultType]::ParameterName, 'Send the request once more with MODEL if the model is overloaded, rate limited or not found (after the retries, and only if nothing was printed yet)')
            [CompletionResult]::new('--api-key-file', '--api-key-file', [CompletionResultType]::ParameterName, 'Read the API key from a file (otherwise CS_MSG_API_KEY)')
            [CompletionResult]::new('--max-retries', '--max-retries', [CompletionResultType]::ParameterName, 'Retries for transient failures (429, 5xx, 529, connection errors)')
            [CompletionResult]::new('--generate', '--generate', [CompletionResultType]::ParameterName, 'Print shell completions or the man page (for packagers)')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Seconds allowed to establish a connection')
            [CompletionResult]::new('--idle-timeout', '--idle-timeout', [CompletionResultType]::ParameterName, 'Seconds of silence allowed while a stream is expected')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Wall-clock limit in seconds for the whole call, retries included [default: 600 with --no-stream, none when streaming]')
            [CompletionResult]::new('--batch', '--batch', [CompletionResultType]::ParameterName, 'Answer every line of a JSONL file in parallel (`-` = stdin)')
            [CompletionResult]::new('-j', '-j', [CompletionResultType]::ParameterName, 'Requests in flight at once with --batch [default: 4]')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Requests in flight at once with --batch [default: 4]')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Append the results to OUT.jsonl instead of stdout; a re-run skips the lines already answered there (resume)')
            [CompletionResult]::new('--no-stdin', '--no-stdin', [CompletionResultType]::ParameterName, 'Do not read piped stdin')
            [CompletionResult]::new('--cache', '--cache', [CompletionResultType]::ParameterName, 'Cache the stable prefix (tools, system, files, history) between calls')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the whole message object as one line of JSON')
            [CompletionResult]::new('--events', '--events', [CompletionResultType]::ParameterName, 'Print every server-sent event''s data as one JSON line, as it arrives')
            [CompletionResult]::new('--stream', '--stream', [CompletionResultType]::ParameterName, 'Stream the answer (the default)')
            [CompletionResult]::new('--no-stream', '--no-stream', [CompletionResultType]::ParameterName, 'Wait for the whole answer instead of streaming it')
            [CompletionResult]::new('--count-tokens', '--count-tokens', [CompletionResultType]::ParameterName, 'Count the request''s input tokens instead of sending it')
            [CompletionResult]::new('--list-models', '--list-models', [CompletionResultType]::ParameterName, 'List the available model ids, one a line')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Print the request body that would be sent, and send nothing')
            [CompletionResult]::new('--show-thinking', '--show-thinking', [CompletionResultType]::ParameterName, 'Print the model''s thinking to stderr')
            [CompletionResult]::new('--usage', '--usage', [CompletionResultType]::ParameterName, 'Print token usage to stderr after the answer')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Exit 6 instead of warning when the answer stopped early (max_tokens, refusal, pause_turn, model_context_window_exceeded)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print URL, model, request-id, status, retries and timings to stderr')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print URL, model, request-id, status, retries and timings to stderr')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Silence warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Silence warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
