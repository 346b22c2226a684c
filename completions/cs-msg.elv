
use builtin;
use str;

set edit:completion:arg-completer[cs-msg] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'cs-msg'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'cs-msg'= {
            cand -f 'Attach a file: text, image or PDF (`-` = stdin); repeatable'
            cand --file 'Attach a file: text, image or PDF (`-` = stdin); repeatable'
            cand -s 'System prompt'
            cand --system 'System prompt'
            cand --system-file 'Read the system prompt from a file'
            cand --messages 'Prior turns: a JSON array of messages; this turn, if any, is appended'
            cand -c 'Chat kept in a file: its turns are sent, the reply is saved'
            cand --conversation 'Chat kept in a file: its turns are sent, the reply is saved'
            cand --request 'Send a complete request body (`-` = stdin); flags given here override its fields'
            cand -m 'Model id, sent verbatim'
            cand --model 'Model id, sent verbatim'
            cand --max-tokens 'Maximum number of tokens to generate'
            cand -t 'Sampling temperature, 0.0 to 1.0'
            cand --temperature 'Sampling temperature, 0.0 to 1.0'
            cand --top-p 'Nucleus sampling, 0.0 to 1.0'
            cand --top-k 'Sample only from the K most likely tokens'
            cand --stop 'Stop when the model writes SEQ; repeatable'
            cand --metadata-user-id 'Opaque end-user id sent as metadata.user_id'
            cand --beta 'Enable a beta feature (anthropic-beta header); repeatable'
            cand --tools 'Tool definitions: a JSON file holding an array of tools'
            cand --tool-choice 'Which tool the model may use: auto, any, none, or a tool NAME'
            cand --exec 'Run tool NAME (defined in --tools) with COMMAND when the model calls it; repeatable'
            cand --tool-result 'Answer a tool call of the history''s last turn: ID=TEXT, ID=@FILE or ID=- (stdin); repeatable'
            cand --tool-error 'Like --tool-result, but the call failed (is_error: true)'
            cand --mcp 'Start an MCP server (COMMAND, split like --exec) and offer its tools; repeatable'
            cand --mcp-tools 'Offer only these tools of the --mcp servers (one list over all of them)'
            cand --max-turns 'The most requests one tool loop sends (--exec, --mcp)'
            cand --tool-timeout 'Seconds a tool command may run before its process group is killed'
            cand --schema 'Print one JSON object matching this JSON Schema (file or inline)'
            cand --thinking 'Extended thinking: `adaptive`, or a token budget N (at least 1024)'
            cand --effort 'How much effort the model spends (output_config.effort)'
            cand --cache-ttl 'Cache lifetime: 5m or 1h; implies --cache'
            cand --base-url 'API base URL (without /v1)'
            cand --fallback-model 'Send the request once more with MODEL if the model is overloaded, rate limited or not found (after the retries, and only if nothing was printed yet)'
            cand --api-key-file 'Read the API key from a file (otherwise CS_MSG_API_KEY)'
            cand --max-retries 'Retries for transient failures (429, 5xx, 529, connection errors)'
            cand --generate 'Print shell completions or the man page (for packagers)'
            cand --connect-timeout 'Seconds allowed to establish a connection'
            cand --idle-timeout 'Seconds of silence allowed while a stream is expected'
            cand --timeout 'Wall-clock limit in seconds for the whole call, retries included [default: 600 with --no-stream, none when streaming]'
            cand --batch 'Answer every line of a JSONL file in parallel (`-` = stdin)'
            cand -j 'Requests in flight at once with --batch [default: 4]'
            cand --jobs 'Requests in flight at once with --batch [default: 4]'
            cand --output 'Append the results to OUT.jsonl instead of stdout; a re-run skips the lines already answered there (resume)'
            cand --no-stdin 'Do not read piped stdin'
            cand --cache 'Cache the stable prefix (tools, system, files, history) between calls'
            cand --json 'Print the whole message object as one line of JSON'
            cand --events 'Print every server-sent event''s data as one JSON line, as it arrives'
            cand --stream 'Stream the answer (the default)'
            cand --no-stream 'Wait for the whole answer instead of streaming it'
            cand --count-tokens 'Count the request''s input tokens instead of sending it'
            cand --list-models 'List the available model ids, one a line'
            cand --dry-run 'Print the request body that would be sent, and send nothing'
            cand --show-thinking 'Print the model''s thinking to stderr'
            cand --usage 'Print token usage to stderr after the answer'
            cand --strict 'Exit 6 instead of warning when the answer stopped early (max_tokens, refusal, pause_turn, model_context_window_exceeded)'
            cand -v 'Print URL, model, request-id, status, retries and timings to stderr'
            cand --verbose 'Print URL, model, request-id, status, retries and timings to stderr'
            cand -q 'Silence warnings'
            cand --quiet 'Silence warnings'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
    ]
    $completions[$command]
}
