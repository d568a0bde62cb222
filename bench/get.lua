-- wrk script: GET a path; "%d" in it becomes a random integer in [1, bound).
function init(args)
  template = args[1]
  bound = tonumber(args[2])
  headers = {}
  if args[3] ~= nil and args[3] ~= "" then
    headers["Authorization"] = "Bearer " .. args[3]
  end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

function request()
  local path = template
  if string.find(template, "%%d") then
    path = string.format(template, math.random(1, bound - 1))
  end
  return wrk.format("GET", path, headers)
end
