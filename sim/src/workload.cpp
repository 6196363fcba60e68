/// The workload scheduler: a fluid discrete-event run of a task DAG in which the speed of compute tasks
/// changes whenever communication tasks start or end on their ranks (docs/workloads.md, "The model").
#include "copro/sim/workload.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <string>

#include "copro/core/config.hpp"
#include "copro/core/status.hpp"

namespace copro::sim {

namespace {

using core::Error;
using core::ErrorCode;

constexpr double kInf = std::numeric_limits<double>::infinity();
/// Work (ps at full speed) below which a compute task counts as done: absorbs the rounding of rate x dt.
constexpr double kDoneSlack = 1e-3;

enum class State : std::uint8_t { kWaiting, kReady, kRunning, kDone };

struct TaskState {
  const Task* task = nullptr;
  std::int32_t first = 0;
  std::int32_t count = 0;
  std::vector<std::int32_t> ranks;  ///< the ranks it runs on (first .. first + count - 1, or comm.placement)
  bool compute = true;
  double nominal = 0.0;    ///< ps
  double remaining = 0.0;  ///< compute: ps of work at full speed left
  double rate = 1.0;       ///< compute: current fraction of full speed
  double end = 0.0;        ///< communication: when it ends
  std::int32_t sms = 0;    ///< communication: SMs it occupies
  double duration = 0.0;   ///< communication: ps it takes in this pass (nominal, or with contention)
  std::int32_t depsTotal = 0;
  std::int32_t deps = 0;
  std::vector<std::int32_t> next;
  State state = State::kWaiting;
  double started = 0.0;
  double ended = 0.0;
};

core::Time toTime(double ps) {
  return core::Time::ps(std::llround(ps));
}

/// Passes of the contention fixed point (runWorkload): enough for the workloads here to settle; a schedule
/// still moving after them is reported as the last pass left it.
constexpr int kMaxContentionPasses = 6;

/// Per rank: time with compute running, time with only communication in flight.
struct RankTotals {
  std::vector<double> exposed;
  std::vector<double> busy;
};

/// One fluid run of the DAG with the communication durations of `jobs` (the scheduler of the header).
RankTotals schedule(std::vector<TaskState>& jobs, std::int32_t nranks, const ComputeParams& cp,
                    const std::string& where);

/// Communication tasks whose scheduled intervals overlap, in groups (each in start order); single tasks
/// are left out.
std::vector<std::vector<std::int32_t>> overlappingComm(const std::vector<TaskState>& jobs) {
  std::vector<std::int32_t> comm;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (!jobs[i].compute && jobs[i].ended > jobs[i].started) comm.push_back(static_cast<std::int32_t>(i));
  }
  std::stable_sort(comm.begin(), comm.end(), [&](std::int32_t a, std::int32_t b) {
    return jobs[static_cast<std::size_t>(a)].started < jobs[static_cast<std::size_t>(b)].started;
  });
  std::vector<std::vector<std::int32_t>> groups;
  std::vector<std::int32_t> group;
  double groupEnd = -1.0;
  for (const std::int32_t id : comm) {
    const TaskState& j = jobs[static_cast<std::size_t>(id)];
    if (!group.empty() && j.started >= groupEnd) {
      if (group.size() > 1) groups.push_back(group);
      group.clear();
    }
    groupEnd = group.empty() ? j.ended : std::max(groupEnd, j.ended);
    group.push_back(id);
  }
  if (group.size() > 1) groups.push_back(group);
  return groups;
}

/// New durations from the concurrent callback: every overlapping group simulated together; the others alone.
std::vector<double> contendedDurations(const std::vector<TaskState>& jobs, const WorkloadOptions& options) {
  std::vector<double> d(jobs.size(), 0.0);
  for (std::size_t i = 0; i < jobs.size(); ++i) d[i] = jobs[i].nominal;
  for (const auto& group : overlappingComm(jobs)) {
    const double t0 = jobs[static_cast<std::size_t>(group[0])].started;
    std::vector<CommLaunch> launches;
    for (const std::int32_t id : group) {
      const TaskState& j = jobs[static_cast<std::size_t>(id)];
      CommLaunch l;
      l.task = j.task->comm;
      if (l.task.groupSize <= 0) l.task.groupSize = j.count;
      l.firstRank = j.first;
      l.start = toTime(j.started - t0);
      launches.push_back(std::move(l));
    }
    const std::vector<core::Time> t = options.concurrentCommTime(launches);
    if (t.size() != group.size()) {
      throw Error(ErrorCode::kInternal, "the concurrent duration callback returned " + std::to_string(t.size()) +
                                            " times for " + std::to_string(group.size()) + " tasks");
    }
    for (std::size_t k = 0; k < group.size(); ++k) {
      d[static_cast<std::size_t>(group[k])] = static_cast<double>(t[k].picoseconds());
    }
  }
  return d;
}

/// The ranks of a task: its range, or the explicit placement of a communication task (each rank once,
/// inside the job).
template <typename Fail>
void assignRanks(TaskState& j, const Task& t, std::int32_t nranks, const Fail& fail) {
  j.ranks.clear();
  if (t.kind == TaskKind::kCompute || t.comm.placement.empty()) {
    for (std::int32_t r = j.first; r < j.first + j.count; ++r) j.ranks.push_back(r);
    return;
  }
  std::vector<bool> seen(static_cast<std::size_t>(nranks), false);
  for (const std::int32_t r : t.comm.placement) {
    if (r < 0 || r >= nranks) {
      fail(t, "rank " + std::to_string(r) + " is outside the job's ranks 0-" + std::to_string(nranks - 1));
    }
    if (seen[static_cast<std::size_t>(r)]) fail(t, "rank " + std::to_string(r) + " is listed twice");
    seen[static_cast<std::size_t>(r)] = true;
    j.ranks.push_back(r);
  }
  j.first = t.comm.placement.front();
  j.count = static_cast<std::int32_t>(t.comm.placement.size());
}

RankTotals schedule(std::vector<TaskState>& jobs, std::int32_t nranks, const ComputeParams& cp,
                    const std::string& where) {
  for (TaskState& j : jobs) {
    j.state = State::kWaiting;
    j.deps = j.depsTotal;
    j.remaining = j.compute ? j.nominal : 0.0;
    j.rate = 1.0;
    j.started = 0.0;
    j.ended = 0.0;
  }
  const auto n = static_cast<std::size_t>(nranks);
  std::vector<std::int32_t> computeOn(n, -1);  // the compute task running on a rank
  std::vector<std::int32_t> commSms(n, 0);     // SMs held by communication in flight
  std::vector<std::int32_t> commCount(n, 0);
  std::vector<double> exposed(n, 0.0);
  std::vector<double> busy(n, 0.0);
  std::vector<std::int32_t> readyCompute;  // in the order they became ready
  std::vector<std::int32_t> running;
  std::size_t done = 0;
  double now = 0.0;

  std::vector<std::int32_t> newlyReady;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (jobs[i].deps == 0) newlyReady.push_back(static_cast<std::int32_t>(i));
  }
  const auto finish = [&](std::int32_t id) {
    TaskState& j = jobs[static_cast<std::size_t>(id)];
    j.state = State::kDone;
    j.ended = now;
    ++done;
    for (const std::int32_t r : j.ranks) {
      const auto ru = static_cast<std::size_t>(r);
      if (j.compute) {
        computeOn[ru] = -1;
      } else {
        commSms[ru] -= j.sms;
        --commCount[ru];
      }
    }
    for (const std::int32_t s : j.next) {
      if (--jobs[static_cast<std::size_t>(s)].deps == 0) newlyReady.push_back(s);
    }
  };

  while (done < jobs.size()) {
    // Start what can start now; tasks of zero length end at once and may release others at this time.
    bool changed = true;
    while (changed) {
      changed = false;
      std::sort(newlyReady.begin(), newlyReady.end());
      for (const std::int32_t id : newlyReady) {
        TaskState& j = jobs[static_cast<std::size_t>(id)];
        j.state = State::kReady;
        if (j.compute) {
          readyCompute.push_back(id);
        } else {
          j.state = State::kRunning;
          j.started = now;
          j.end = now + j.duration;
          for (const std::int32_t r : j.ranks) {
            commSms[static_cast<std::size_t>(r)] += j.sms;
            ++commCount[static_cast<std::size_t>(r)];
          }
          running.push_back(id);
        }
      }
      newlyReady.clear();
      for (std::size_t k = 0; k < readyCompute.size();) {
        const std::int32_t id = readyCompute[k];
        TaskState& j = jobs[static_cast<std::size_t>(id)];
        bool free = true;
        for (const std::int32_t r : j.ranks) free = free && computeOn[static_cast<std::size_t>(r)] < 0;
        if (!free) {
          ++k;
          continue;
        }
        for (const std::int32_t r : j.ranks) computeOn[static_cast<std::size_t>(r)] = id;
        j.state = State::kRunning;
        j.started = now;
        running.push_back(id);
        readyCompute.erase(readyCompute.begin() + static_cast<std::ptrdiff_t>(k));
      }
      for (std::size_t k = 0; k < running.size();) {
        const std::int32_t id = running[k];
        TaskState& j = jobs[static_cast<std::size_t>(id)];
        const bool over = j.compute ? j.remaining <= kDoneSlack : j.end <= now;
        if (over) {
          running.erase(running.begin() + static_cast<std::ptrdiff_t>(k));
          finish(id);
          changed = true;
        } else {
          ++k;
        }
      }
    }
    if (done == jobs.size()) break;
    // Rates of the running compute tasks: the slowest of their ranks.
    double next = kInf;
    for (const std::int32_t id : running) {
      TaskState& j = jobs[static_cast<std::size_t>(id)];
      if (!j.compute) {
        next = std::min(next, j.end);
        continue;
      }
      std::int32_t held = 0;
      for (const std::int32_t r : j.ranks) held = std::max(held, commSms[static_cast<std::size_t>(r)]);
      held = std::min(held, cp.sms);
      j.rate = static_cast<double>(cp.sms - held) / static_cast<double>(cp.sms);
      if (j.rate > 0.0) next = std::min(next, now + j.remaining / j.rate);
    }
    if (next == kInf) {
      throw Error(ErrorCode::kInternal,
                  where + ": the scheduler stalled with " + std::to_string(jobs.size() - done) + " tasks left");
    }
    const double dt = next - now;
    for (const std::int32_t id : running) {
      TaskState& j = jobs[static_cast<std::size_t>(id)];
      if (!j.compute) continue;
      // The task(s) that define `next` end exactly there.
      if (j.rate > 0.0 && now + j.remaining / j.rate <= next) {
        j.remaining = 0.0;
      } else {
        j.remaining -= j.rate * dt;
      }
    }
    for (std::size_t r = 0; r < n; ++r) {
      if (computeOn[r] >= 0) {
        busy[r] += dt;
      } else if (commCount[r] > 0) {
        exposed[r] += dt;
      }
    }
    now = next;
  }

  return {std::move(exposed), std::move(busy)};
}

}  // namespace

std::string_view taskKindName(TaskKind k) noexcept {
  switch (k) {
    case TaskKind::kCompute:
      return "compute";
    case TaskKind::kCollective:
      return "collective";
    case TaskKind::kMoeDispatch:
      return "moe_dispatch";
    case TaskKind::kMoeCombine:
      return "moe_combine";
  }
  return "unknown";
}

WorkloadResult runWorkload(const Workload& workload, const WorkloadOptions& options) {
  const std::string where =
      workload.path.empty() ? "workload '" + workload.name + "'" : "workload '" + workload.path + "'";
  const std::int32_t nranks = options.ranks > 0 ? options.ranks : workload.ranks;
  if (nranks <= 0) {
    throw Error(ErrorCode::kInvalidArgument,
                where + ": the number of ranks is unknown; give `ranks:` in the file or a topology");
  }
  const ComputeParams& cp = options.compute;
  if (cp.sms <= 0 || cp.commSms < 0 || cp.commSms > cp.sms || !(cp.flops > 0.0)) {
    throw Error(ErrorCode::kInvalidArgument, where +
                                                 ": compute model needs sms > 0, 0 <= comm_sms <= sms and "
                                                 "flops > 0 (sim keys compute.*)");
  }
  const auto fail = [&](const Task& t, const std::string& why) {
    throw Error(ErrorCode::kInvalidArgument, (t.origin.empty() ? where : t.origin) + ": task '" + t.name + "': " + why);
  };

  std::vector<TaskState> jobs(workload.tasks.size());
  std::map<std::string, std::int32_t> byName;
  for (std::size_t i = 0; i < workload.tasks.size(); ++i) {
    const Task& t = workload.tasks[i];
    if (!byName.emplace(t.name, static_cast<std::int32_t>(i)).second) fail(t, "the name is used twice");
  }
  bool needsCallback = false;
  for (const Task& t : workload.tasks) needsCallback = needsCallback || t.kind != TaskKind::kCompute;
  if (needsCallback && !options.commTime) {
    throw Error(ErrorCode::kInvalidArgument, where + ": communication tasks need a duration callback");
  }
  for (std::size_t i = 0; i < workload.tasks.size(); ++i) {
    const Task& t = workload.tasks[i];
    TaskState& j = jobs[i];
    j.task = &t;
    j.first = t.numRanks > 0 ? t.firstRank : 0;
    j.count = t.numRanks > 0 ? t.numRanks : nranks;
    if (j.first < 0 || static_cast<std::int64_t>(j.first) + j.count > nranks) {
      fail(t, "ranks " + std::to_string(j.first) + "-" + std::to_string(j.first + j.count - 1) +
                  " are outside the job's ranks 0-" + std::to_string(nranks - 1));
    }
    assignRanks(j, t, nranks, fail);
    for (const std::string& dep : t.after) {
      const auto it = byName.find(dep);
      if (it == byName.end()) {
        std::vector<std::string> names;
        for (const Task& o : workload.tasks) {
          if (o.name != t.name) names.push_back(o.name);
        }
        const std::string hint = core::nearestName(dep, names);
        fail(t,
             "`after` names '" + dep + "', which is no task" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
      }
      jobs[static_cast<std::size_t>(it->second)].next.push_back(static_cast<std::int32_t>(i));
      ++j.depsTotal;
    }
    if (t.kind == TaskKind::kCompute) {
      j.compute = true;
      if (t.duration.picoseconds() > 0) {
        j.nominal = static_cast<double>(t.duration.picoseconds());
      } else {
        const double eff = t.efficiency > 0.0 ? t.efficiency : cp.efficiency;
        j.nominal = t.flops / (cp.flops * eff) * 1e12;
      }
      j.remaining = j.nominal;
    } else {
      j.compute = false;
      if (t.comm.groupSize > 0 && j.count % t.comm.groupSize != 0) {
        fail(t, "its " + std::to_string(j.count) + " ranks do not split into groups of " +
                    std::to_string(t.comm.groupSize));
      }
      j.sms = t.comm.sms >= 0 ? t.comm.sms : (t.comm.initiation == core::Initiation::kOffload ? 0 : cp.commSms);
      if (j.sms > cp.sms) {
        fail(t, "it occupies " + std::to_string(j.sms) + " SMs but the GPU has " + std::to_string(cp.sms));
      }
      CommTask asked = t.comm;
      if (asked.groupSize <= 0) asked.groupSize = j.count;
      const core::Time d = options.commTime(asked);
      if (d.picoseconds() < 0) fail(t, "the duration callback returned a negative time");
      j.nominal = static_cast<double>(d.picoseconds());
      j.duration = j.nominal;
    }
  }
  // A cycle leaves tasks that never become ready: find them before scheduling.
  {
    std::vector<std::int32_t> deps(jobs.size());
    std::vector<std::int32_t> order;
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      deps[i] = jobs[i].depsTotal;
      if (deps[i] == 0) order.push_back(static_cast<std::int32_t>(i));
    }
    for (std::size_t k = 0; k < order.size(); ++k) {
      for (const std::int32_t n : jobs[static_cast<std::size_t>(order[k])].next) {
        if (--deps[static_cast<std::size_t>(n)] == 0) order.push_back(n);
      }
    }
    if (order.size() != jobs.size()) {
      std::string names;
      for (std::size_t i = 0; i < jobs.size(); ++i) {
        if (deps[i] > 0) names += (names.empty() ? "'" : ", '") + jobs[i].task->name + "'";
      }
      throw Error(ErrorCode::kInvalidArgument,
                  where + ": the `after` dependencies form a cycle through " + names + "; remove one of them");
    }
  }

  // Contention (docs/workloads.md, "The model"): communication tasks that the schedule overlaps are
  // simulated together and the DAG is scheduled again with their durations, until the durations settle.
  RankTotals totals = schedule(jobs, nranks, cp, where);
  for (int pass = 1; options.concurrentCommTime && pass < kMaxContentionPasses; ++pass) {
    const std::vector<double> d = contendedDurations(jobs, options);
    bool same = true;
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      same = same && (jobs[i].compute || jobs[i].duration == d[i]);
      if (!jobs[i].compute) jobs[i].duration = d[i];
    }
    if (same) break;
    totals = schedule(jobs, nranks, cp, where);
  }
  const std::vector<double>& exposed = totals.exposed;
  const std::vector<double>& busy = totals.busy;

  WorkloadResult out;
  double lost = 0.0;
  for (const TaskState& j : jobs) {
    TaskTiming t;
    t.name = j.task->name;
    t.kind = j.task->kind;
    t.start = toTime(j.started);
    t.end = toTime(j.ended);
    t.nominal = toTime(j.nominal);
    if (j.compute) {
      const double l = std::max(0.0, j.ended - j.started - j.nominal);
      t.lost = toTime(l);
      lost += l;
    } else {
      t.sms = j.sms;
    }
    out.stepTime = std::max(out.stepTime, t.end);
    out.tasks.push_back(std::move(t));
  }
  out.computeLost = toTime(lost);
  out.exposedComm = toTime(*std::max_element(exposed.begin(), exposed.end()));
  out.computeBusy = toTime(*std::max_element(busy.begin(), busy.end()));
  return out;
}

}  // namespace copro::sim
