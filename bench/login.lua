-- wrk script: POSTs each pre-signed login body once (one thread: -t1),
-- from line args[2] (default 1) of the file args[1].
local bodies, i = {}, 0
function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  i = (tonumber(args[2]) or 1) - 1
end
function request()
  i = i + 1
  if i > #bodies then i = 1 end
  return wrk.format("POST", "/jpki/login",
                    {["Content-Type"] = "application/json"}, bodies[i])
end
