complete -c cs-msg -s f -l file -d 'Attach a file: text, image or PDF (`-` = stdin); repeatable' -r -F
complete -c cs-msg -s s -l system -d 'System prompt' -r
complete -c cs-msg -l system-file -d 'Read the system prompt from a file' -r -F
complete -c cs-msg -l messages -d 'Prior turns: a JSON array of messages; this turn, if any, is appended' -r -F
complete -c cs-msg -s c -l conversation -d 'Chat kept in a file: its turns are sent, the reply is saved' -r -F
complete -c cs-msg -l request -d 'Send a complete request body (`-` = stdin); flags given here override its fields' -r -F
complete -c cs-msg -s m -l model -d 'Model id, sent verbatim' -r
complete -c cs-msg -l max-tokens -d 'Maximum number of tokens to generate' -r
complete -c cs-msg -s t -l temperature -d 'Sampling temperature, 0.0 to 1.0' -r
complete -c cs-msg -l top-p -d 'Nucleus sampling, 0.0 to 1.0' -r
complete -c cs-msg -l top-k -d 'Sample only from the K most likely tokens' -r
complete -c cs-msg -l stop -d 'Stop when the model writes SEQ; repeatable' -r
complete -c cs-msg -l metadata-user-id -d 'Opaque end-user id sent as metadata.user_id' -r
complete -c cs-msg -l beta -d 'Enable a beta feature (anthropic-beta header); repeatable' -r
complete -c cs-msg -l tools -d 'Tool definitions: a JSON file holding an array of tools' -r -F
complete -c cs-msg -l tool-choice -d 'Which tool the model may use: auto, any, none, or a tool NAME' -r
complete -c cs-msg -l exec -d 'Run tool NAME (defined in --tools) with COMMAND when the model calls it; repeatable' -r
complete -c cs-msg -l tool-result -d 'Answer a tool call of the history\'s last turn: ID=TEXT, ID=@FILE or ID=- (stdin); repeatable' -r
complete -c cs-msg -l tool-error -d 'Like --tool-result, but the call failed (is_error: true)' -r
complete -c cs-msg -l mcp -d 'Start an MCP server (COMMAND, split like --exec) and offer its tools; repeatable' -r
complete -c cs-msg -l mcp-tools -d 'Offer only these tools of the --mcp servers (one list over all of them)' -r
complete -c cs-msg -l max-turns -d 'The most requests one tool loop sends (--exec, --mcp)' -r
complete -c cs-msg -l tool-timeout -d 'Seconds a tool command may run before its process group is killed' -r
complete -c cs-msg -l schema -d 'Print one JSON object matching this JSON Schema (file or inline)' -r
complete -c cs-msg -l thinking -d 'Extended thinking: `adaptive`, or a token budget N (at least 1024)' -r
complete -c cs-msg -l effort -d 'How much effort the model spends (output_config.effort)' -r -f -a "low\t''
medium\t''
high\t''
max\t''"
complete -c cs-msg -l cache-ttl -d 'Cache lifetime: 5m or 1h; implies --cache' -r
complete -c cs-msg -l base-url -d 'API base URL (without /v1)' -r
complete -c cs-msg -l fallback-model -d 'Send the request once more with MODEL if the model is overloaded, rate limited or not found (after the retries, and only if nothing was printed yet)' -r
complete -c cs-msg -l api-key-file -d 'Read the API key from a file (otherwise CS_MSG_API_KEY)' -r -F
complete -c cs-msg -l max-retries -d 'Retries for transient failures (429, 5xx, 529, connection errors)' -r
complete -c cs-msg -l generate -d 'Print shell completions or the man page (for packagers)' -r -f -a "bash\t''
zsh\t''
fish\t''
powershell\t''
elvish\t''
man\t''"
complete -c cs-msg -l connect-timeout -d 'Seconds allowed to establish a connection' -r
complete -c cs-msg -l idle-timeout -d 'Seconds of silence allowed while a stream is expected' -r
complete -c cs-msg -l timeout -d 'Wall-clock limit in seconds for the whole call, retries included [default: 600 with --no-stream, none when streaming]' -r
complete -c cs-msg -l batch -d 'Answer every line of a JSONL file in parallel (`-` = stdin)' -r -F
complete -c cs-msg -s j -l jobs -d 'Requests in flight at once with --batch [default: 4]' -r
complete -c cs-msg -l output -d 'Append the results to OUT.jsonl instead of stdout; a re-run skips the lines already answered there (resume)' -r -F
complete -c cs-msg -l no-stdin -d 'Do not read piped stdin'
complete -c cs-msg -l cache -d 'Cache the stable prefix (tools, system, files, history) between calls'
complete -c cs-msg -l json -d 'Print the whole message object as one line of JSON'
complete -c cs-msg -l events -d 'Print every server-sent event\'s data as one JSON line, as it arrives'
complete -c cs-msg -l stream -d 'Stream the answer (the default)'
complete -c cs-msg -l no-stream -d 'Wait for the whole answer instead of streaming it'
complete -c cs-msg -l count-tokens -d 'Count the request\'s input tokens instead of sending it'
complete -c cs-msg -l list-models -d 'List the available model ids, one a line'
complete -c cs-msg -l dry-run -d 'Print the request body that would be sent, and send nothing'
complete -c cs-msg -l show-thinking -d 'Print the model\'s thinking to stderr'
complete -c cs-msg -l usage -d 'Print token usage to stderr after the answer'
complete -c cs-msg -l strict -d 'Exit 6 instead of warning when the answer stopped early (max_tokens, refusal, pause_turn, model_context_window_exceeded)'
complete -c cs-msg -s v -l verbose -d 'Print URL, model, request-id, status, retries and timings to stderr'
complete -c cs-msg -s q -l quiet -d 'Silence warnings'
complete -c cs-msg -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cs-msg -s V -l version -d 'Print version'
