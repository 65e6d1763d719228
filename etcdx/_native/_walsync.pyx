# cython: language_level=3
"""The WAL's sync worker, on a thread that never takes the GIL for its writes and fdatasyncs (the readable twin
is walsync_py.py, whose module docstring is the contract this module keeps).

Why native: a Python sync thread needs the GIL to pick up a job, between its pwrite and its fdatasync, and to
report back; while the event loop runs Python (reading and dispatching the next requests), each of those
waits for the loop to release the GIL. Measured at 16 clients, the hand-off to the thread and the report back
added 100 to 400 us around each fdatasync. Here the thread waits on a pthread condition variable, writes and
fdatasyncs from the job's buffers, and says the job ended by writing to an eventfd: the GIL is taken only to
call a run's ``opener`` (a new segment, once per segment) and to record what it raised.

Memory contract: ``submit`` keeps the job's ``runs`` list (and so every buffer and opener in it) alive until
``take`` returns its outcome; the thread reads the job's C array only between ``submit`` and its eventfd write.
"""

import os

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.ref cimport PyObject
from libc.errno cimport EAGAIN, EINTR, errno
from libc.stdint cimport uint64_t
from libc.stdlib cimport calloc, free
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
from posix.types cimport off_t
from posix.unistd cimport close, fdatasync, pwrite, read, write


cdef extern from "<sys/eventfd.h>" nogil:
    int eventfd(unsigned int initval, int flags)
    enum: EFD_NONBLOCK
    enum: EFD_CLOEXEC


cdef extern from "<pthread.h>" nogil:
    ctypedef unsigned long pthread_t
    ctypedef struct pthread_mutex_t:
        pass
    ctypedef struct pthread_cond_t:
        pass
    int pthread_create(pthread_t* thread, const void* attr, void* (*start)(void*) noexcept nogil, void* arg)
    int pthread_join(pthread_t thread, void** result)
    int pthread_mutex_init(pthread_mutex_t* mutex, const void* attr)
    int pthread_mutex_destroy(pthread_mutex_t* mutex)
    int pthread_mutex_lock(pthread_mutex_t* mutex)
    int pthread_mutex_unlock(pthread_mutex_t* mutex)
    int pthread_cond_init(pthread_cond_t* cond, const void* attr)
    int pthread_cond_destroy(pthread_cond_t* cond)
    int pthread_cond_wait(pthread_cond_t* cond, pthread_mutex_t* mutex)
    int pthread_cond_signal(pthread_cond_t* cond)


cdef struct Run:
    int fd
    off_t offset
    const char* data
    Py_ssize_t size
    PyObject* opener  # NULL, or a callable returning the fd (borrowed: the job's runs list holds it)


cdef struct Shared:
    # Guarded by lock: has_job, stopping. The rest of the job is written by the event loop before has_job is
    # set and by the thread before its eventfd write; each side reads it only after the other's hand-over.
    pthread_mutex_t lock
    pthread_cond_t wake
    bint has_job
    bint stopping
    Run* runs
    int n_runs
    bint fsync
    int error_errno  # the errno of the failed pwrite or fdatasync, 0 if none failed
    bint opener_failed  # an opener raised: its exception is the last item of ``raised``
    double* seconds  # each fdatasync's duration, in order
    int n_synced
    int done_fd
    PyObject* raised  # a list (borrowed: the SyncWorker holds it)


cdef bint _open(Shared* s, Run* run) noexcept nogil:
    """Calls the run's opener with the GIL; False (its exception kept) if it raised."""
    with gil:
        try:
            run.fd = (<object>run.opener)()
            return True
        except BaseException as exc:
            (<list>s.raised).append(exc)
            return False


cdef void _run_job(Shared* s) noexcept nogil:
    cdef Run* run
    cdef Py_ssize_t done
    cdef ssize_t n
    cdef timespec started, ended
    cdef int i
    for i in range(s.n_runs):
        run = &s.runs[i]
        if run.opener != NULL and not _open(s, run):
            s.opener_failed = True
            return
        done = 0
        while done < run.size:
            n = pwrite(run.fd, run.data + done, run.size - done, run.offset + done)
            if n < 0:
                if errno == EINTR:
                    continue
                s.error_errno = errno
                return
            done += n
        if s.fsync:
            clock_gettime(CLOCK_MONOTONIC, &started)
            while fdatasync(run.fd) != 0:
                if errno != EINTR:
                    s.error_errno = errno
                    return
            clock_gettime(CLOCK_MONOTONIC, &ended)
            s.seconds[s.n_synced] = (ended.tv_sec - started.tv_sec) + (ended.tv_nsec - started.tv_nsec) * 1e-9
            s.n_synced += 1


cdef void* _serve(void* arg) noexcept nogil:
    cdef Shared* s = <Shared*>arg
    cdef uint64_t one = 1
    while True:
        pthread_mutex_lock(&s.lock)
        while not s.has_job and not s.stopping:
            pthread_cond_wait(&s.wake, &s.lock)
        if not s.has_job:
            pthread_mutex_unlock(&s.lock)
            return NULL
        pthread_mutex_unlock(&s.lock)
        _run_job(s)
        pthread_mutex_lock(&s.lock)
        s.has_job = False
        pthread_mutex_unlock(&s.lock)
        while write(s.done_fd, &one, sizeof(one)) < 0 and errno == EINTR:
            pass


cdef class SyncWorker:
    cdef Shared* _s
    cdef pthread_t _thread
    cdef bint _started
    cdef object _job  # the running job's runs (None when no job runs): keeps its buffers and openers alive
    cdef list _raised

    def __cinit__(self):
        self._s = <Shared*>calloc(1, sizeof(Shared))
        if self._s == NULL:
            raise MemoryError()
        pthread_mutex_init(&self._s.lock, NULL)
        pthread_cond_init(&self._s.wake, NULL)
        self._s.done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)
        if self._s.done_fd < 0:
            raise OSError(errno, os.strerror(errno))
        self._raised = []
        self._s.raised = <PyObject*>self._raised

    def fileno(self):
        return self._s.done_fd

    def submit(self, list runs, bint fsync):
        if self._job is not None:
            raise RuntimeError("walsync: a job is running")
        cdef int n = len(runs)
        cdef Run* array = <Run*>calloc(max(n, 1), sizeof(Run))
        cdef double* seconds = <double*>calloc(max(n, 1), sizeof(double))
        if array == NULL or seconds == NULL:
            free(array)
            free(seconds)
            raise MemoryError()
        cdef int i
        cdef bytes data
        for i in range(n):
            fd, offset, data, opener = runs[i]
            array[i].fd = fd
            array[i].offset = offset
            array[i].data = PyBytes_AS_STRING(data)
            array[i].size = PyBytes_GET_SIZE(data)
            array[i].opener = NULL if opener is None else <PyObject*>opener
        cdef int failed
        if not self._started:
            failed = pthread_create(&self._thread, NULL, _serve, self._s)  # returns the error; errno is not set
            if failed:
                free(array)
                free(seconds)
                raise OSError(failed, "walsync: cannot start the sync thread: " + os.strerror(failed))
            self._started = True
        self._job = runs
        s = self._s
        s.runs, s.n_runs, s.seconds, s.fsync = array, n, seconds, fsync
        s.error_errno, s.opener_failed, s.n_synced = 0, False, 0
        pthread_mutex_lock(&s.lock)
        s.has_job = True
        pthread_cond_signal(&s.wake)
        pthread_mutex_unlock(&s.lock)

    def take(self):
        cdef uint64_t value
        if self._job is None:
            return None
        if read(self._s.done_fd, &value, sizeof(value)) < 0:
            if errno == EAGAIN or errno == EINTR:
                return None
            raise OSError(errno, os.strerror(errno))
        s = self._s
        error = None
        if s.opener_failed:
            error = self._raised.pop()
        elif s.error_errno:
            error = OSError(s.error_errno, os.strerror(s.error_errno))
        seconds = [s.seconds[i] for i in range(s.n_synced)]
        self._release_job()
        return error, seconds

    def close(self):
        if self._started:
            pthread_mutex_lock(&self._s.lock)
            self._s.stopping = True
            pthread_cond_signal(&self._s.wake)
            pthread_mutex_unlock(&self._s.lock)
            with nogil:
                pthread_join(self._thread, NULL)
            self._started = False
        if self._s.done_fd >= 0:
            close(self._s.done_fd)
            self._s.done_fd = -1

    cdef void _release_job(self):
        free(self._s.runs)
        free(self._s.seconds)
        self._s.runs, self._s.seconds, self._s.n_runs = NULL, NULL, 0
        self._job = None

    def __dealloc__(self):
        if self._s == NULL:
            return
        self.close()
        self._release_job()
        pthread_cond_destroy(&self._s.wake)
        pthread_mutex_destroy(&self._s.lock)
        free(self._s)
        self._s = NULL
