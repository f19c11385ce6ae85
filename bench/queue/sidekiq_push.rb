# Pushes jobs for the Sidekiq peer: `burn N` pushes N no-op jobs at once (push_bulk);
# `steady RATE SECONDS` pushes RATE jobs per second carrying their enqueue time.
require "sidekiq"
require_relative "sidekiq_noop"

mode = ARGV[0]
if mode == "burn"
  n = Integer(ARGV[1])
  n.times.each_slice(1000) do |slice|
    Sidekiq::Client.push_bulk("class" => NoopJob, "args" => slice.map { [0] })
  end
elsif mode == "steady"
  rate = Integer(ARGV[1])
  secs = Integer(ARGV[2])
  tick = 0.01
  per_tick = rate * tick
  start = Time.now.to_f
  sent = 0
  while Time.now.to_f - start < secs
    due = ((Time.now.to_f - start) / tick).floor * per_tick
    while sent < due
      NoopJob.perform_async(Time.now.to_f)
      sent += 1
    end
    sleep tick / 2
  end
  puts sent
else
  abort "usage: sidekiq_push.rb burn N | steady RATE SECONDS"
end
