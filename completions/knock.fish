complete --keep-order --exclusive --command knock --arguments "(COMPLETE=fish knock -- (commandline --current-process --tokenize --cut-at-cursor) (commandline --current-token))"
