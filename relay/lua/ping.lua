-- ping.lua: the smallest script; the relay loads it to check that scripting works.
return 1
